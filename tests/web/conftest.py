"""Browser tests: the admin service under uvicorn on a free loopback port (fresh database with
one user per role), driven by Debian's Chromium through Playwright, headless."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from support.admin import PASSWORD, admin_app, database_url, dbs  # noqa: F401 - fixtures

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required", "--lang=zh-CN"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def _free_port() -> int:
    from lerec.deploy.broker import free_port

    return free_port()  # (below the ephemeral range: see free_ports)


class Server:
    def __init__(self, app, port: int) -> None:
        import uvicorn

        self.app = app
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="admin-server", daemon=True)

    def __enter__(self) -> Server:  # noqa: PYI034
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("admin server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def server(database_url, tmp_path, pki):
    """The admin service with the hub CA's C2PA signer (requesters' downloads are exports)."""
    from lerec.hub.export import issue_c2pa_signer

    signer = issue_c2pa_signer(pki.ca_cert, pki.ca_key, pki.root / "hub")
    app = admin_app(database_url, tmp_path / "store", c2pa_cert=signer.cert,
                    c2pa_key=signer.key, c2pa_ca=pki.ca_cert)
    with Server(app, _free_port()) as srv:
        yield srv


@pytest.fixture
async def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
def shots():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    async def take(page, name: str) -> None:
        await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    return take


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def new_page(browser):
    """``await new_page()``: a tab on a desktop screen, in Chinese."""

    async def make():
        return await browser.new_page(viewport={"width": 1400, "height": 900}, locale="zh-CN")

    return make


@pytest.fixture
def login(server, password):
    """``await login(page, name, landing)``: log in through the form as ``name`` (the test
    password) and wait for the page the role lands on (``/cases``, a party ``/access``)."""

    async def do(page, name: str, landing: str = "/cases") -> None:
        await page.goto(server.url + "/login")
        await page.fill("#username", name)
        await page.fill("#password", password)
        await page.click("button[type=submit]")
        await page.wait_for_url(server.url + landing)

    return do


@pytest.fixture
def run_db(database_url):
    """``await run_db(fn)``: run ``fn(session)`` in a transaction on the test database, from
    the test's own event loop."""

    async def run(fn):
        from lerec.hub.db import make_engine, sessionmaker

        engine = make_engine(database_url)
        try:
            async with sessionmaker(engine)() as s, s.begin():
                return await fn(s)
        finally:
            await engine.dispose()

    return run


@pytest.fixture
def play():
    """``await play(video)``: play a <video> muted until it has decoded half a second (15 s at
    most), pause it; its readyState, currentTime and error (a failed play()'s message, or the
    media error code)."""

    async def do(video) -> dict:
        return await video.evaluate("""async (v) => {
            v.muted = true;
            try { await v.play(); }
            catch (e) { return {error: String(e), readyState: v.readyState}; }
            const t0 = performance.now();
            while ((v.readyState < 2 || v.currentTime < 0.5) && performance.now() - t0 < 15000) {
                await new Promise(r => setTimeout(r, 100));
            }
            v.pause();
            return {readyState: v.readyState, currentTime: v.currentTime,
                    error: v.error && v.error.code};
        }""")

    return do
