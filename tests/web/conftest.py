"""Browser tests: the admin service under uvicorn on a free loopback port (fresh database with
one user per role), driven by Debian's Chromium through Playwright, headless."""

from __future__ import annotations

import socket
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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
def server(database_url, tmp_path):
    with Server(admin_app(database_url, tmp_path / "store"), _free_port()) as srv:
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
