"""Run a :class:`HubService` on its own event loop in a background thread.

For the demo, the benchmarks and the tests, which drive threaded recorders next to the hub.
``call(coro)`` runs a coroutine on the hub's loop and returns its result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from ..config import HubConfig
from .service import HubService

T = TypeVar("T")


class HubThread:
    def __init__(self, cfg: HubConfig) -> None:
        self.cfg = cfg
        self.loop = asyncio.new_event_loop()
        self.service: HubService | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._main: concurrent.futures.Future[None] | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="hub", daemon=True)

    async def _serve(self) -> None:
        try:
            async with HubService(self.cfg) as hub:
                self.service = hub
                self._ready.set()
                await hub.serve()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise

    def start(self, timeout: float = 30) -> HubThread:
        self._thread.start()
        self._main = asyncio.run_coroutine_threadsafe(self._serve(), self.loop)
        if not self._ready.wait(timeout):
            raise TimeoutError("hub did not start")
        if self._error is not None:
            raise RuntimeError(f"hub failed to start: {self._error!r}") from self._error
        return self

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self._main is not None:
            self.loop.call_soon_threadsafe(self._main.cancel)
            try:
                self._main.result(30)
            except (concurrent.futures.CancelledError, asyncio.CancelledError):
                pass
            except Exception:
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)

    def __enter__(self) -> HubThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
