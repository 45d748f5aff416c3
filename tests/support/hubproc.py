"""The hub as a real child process (``lerec-hub run``), for tests that kill it.

``write_hub_toml`` turns a :class:`HubConfig` into the TOML an operator would write;
``HubProcess`` starts, waits for, kills and inspects (RSS, open files) one hub process;
``enroll`` and ``query_segments`` reach the hub's database directly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lerec.deploy.pki import Pki
from lerec.hub import fleet
from lerec.hub.config import HubConfig
from lerec.hub.db import Segment, make_engine, migrate, sessionmaker

LEREC_HUB = str(Path(sys.executable).parent / "lerec-hub")


def _plain_url(url: str) -> str:
    return url.replace("sqlite+aiosqlite", "sqlite").replace("postgresql+asyncpg", "postgresql")


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_hub_toml(cfg: HubConfig, path: Path) -> Path:
    """Write ``cfg`` as a hub.toml (only what differs from the defaults that matter)."""
    lines = [f"{k} = {_value(v)}" for k, v in [
        ("hub_id", cfg.hub_id), ("database_url", _plain_url(cfg.database_url)),
        ("storage_dir", cfg.storage_dir), ("storage_reserve_bytes", cfg.storage_reserve_bytes),
        ("signing_key", cfg.signing_key), ("box_key", cfg.box_key),
        ("log_level", cfg.log_level),
    ]]
    if cfg.pki_dir is not None:
        lines.append(f"pki_dir = {_value(cfg.pki_dir)}")
    lines.append("[broker]")
    for k, v in cfg.broker.model_dump().items():
        if v is not None:
            lines.append(f"{k} = {_value(v)}")
    lines.append("[ingest]")
    for k, v in cfg.ingest.model_dump().items():
        lines.append(f"{k} = {_value(v)}")
    lines.append("[storage]")
    lines.append(f"backend = {_value(cfg.storage.backend)}")
    if cfg.storage.s3 is not None:
        lines.append("[storage.s3]")
        for k, v in cfg.storage.s3.model_dump().items():
            if v is not None:
                lines.append(f"{k} = {_value(v)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def enroll(cfg: HubConfig, pki: Pki, devices: list[str] | tuple[str, ...]) -> None:
    """Create the schema and enroll ``devices`` (as ``lerec-hub migrate`` + ``enroll`` would)."""

    async def go() -> None:
        engine = make_engine(cfg.database_url)
        try:
            await migrate(engine)
            sessions = sessionmaker(engine)
            for d in devices:
                f = pki.device(d)
                await fleet.enroll(sessions, d, f.signing_pub.read_bytes(), f.cert.read_bytes())
        finally:
            await engine.dispose()

    asyncio.run(go())


def run_db(url: str, fn: Any) -> Any:
    """Run ``await fn(sessions)`` against the hub database from outside the hub."""

    async def go() -> Any:
        engine = make_engine(url)
        try:
            return await fn(sessionmaker(engine))
        finally:
            await engine.dispose()

    return asyncio.run(go())


def query_segments(url: str) -> list[Segment]:
    from sqlalchemy import select

    async def q(sessions: Any) -> list[Segment]:
        async with sessions() as s:
            return list((await s.execute(select(Segment))).scalars())

    return run_db(url, q)  # type: ignore[no-any-return]


class HubProcess:
    """One ``lerec-hub run`` child process."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, wait: bool = True, timeout: float = 30.0) -> HubProcess:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen([LEREC_HUB, "--config", str(self.config), "run"],
                                         stdout=logf, stderr=subprocess.STDOUT,
                                         env={**os.environ, **(self.env or {})})
        self.starts += 1
        if wait:
            self.wait_connected(offset, timeout)
        return self

    def wait_connected(self, offset: int = 0, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"lerec-hub exited with {self.proc.returncode}:\n"
                                   + self.log.read_text(errors="replace")[-3000:])
            with open(self.log, "rb") as f:
                f.seek(offset)
                if b"connected to broker" in f.read():
                    return
            time.sleep(0.05)
        raise TimeoutError(f"lerec-hub did not connect within {timeout}s; see {self.log}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def open_files(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def worker_rss_bytes(self) -> int:
        """Resident memory of the chunk workers (their shared slot memory, mapped by the hub
        too, is counted in both)."""
        total = 0
        for pid in child_pids(self.pid):
            try:
                total += rss_bytes(pid)
            except FileNotFoundError:  # exited meanwhile
                continue
        return total


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def child_pids(pid: int) -> list[int]:
    """The child processes of ``pid`` (for the hub: its chunk workers)."""
    pids: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    return pids
