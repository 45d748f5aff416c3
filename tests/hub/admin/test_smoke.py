"""First light: log in, open a case, see it."""

from __future__ import annotations


async def test_login_and_case(login):
    b = await login("handler_a")
    case = await b.create_case()
    r = await b.get(f"/cases/{case['id']}")
    assert r.status_code == 200, r.text
    assert "依职权启动" in r.text
    r = await b.get("/cases")
    assert case["case_no"] in r.text
