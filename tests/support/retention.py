"""Helpers of the 保存期满 (retention) tests: old stored recordings and the page's ids."""

from __future__ import annotations

import datetime as dt
import re

from lerec.hub.db.models import Segment
from support.admin_client import add_segment

OLD = dt.timedelta(days=200)  # past the default retention period (184 days)


async def old_segment(app, tmp_path, age: dt.timedelta = OLD, device: str = "rec-r1") -> str:
    start = dt.datetime.now(dt.UTC) - age
    return await add_segment(app, tmp_path, "officer_a", start, device=device,
                             data=b"retention-" + start.isoformat().encode())


async def stored_ref(app, segment_id: str) -> str:
    async with app.state.sessions() as s:
        seg = await s.get(Segment, segment_id)
        return seg.stored_ref


def request_id_of(page: str, segment_id: str) -> int:
    m = re.search(r'id="del-req-(\d+)"[^>]*data-segment="' + re.escape(segment_id), page)
    assert m, page[:3000]
    return int(m.group(1))
