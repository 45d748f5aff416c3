"""Render the mosquitto configuration from the PKI, and run a broker as a child process.

Used by the demo, the tests (each test session starts its own broker on a free loopback port)
and the benchmarks, so all three exercise exactly the configuration an operator deploys.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from importlib import resources
from pathlib import Path
from string import Template

from .pki import Pki

log = logging.getLogger(__name__)

#: Largest MQTT packet the broker accepts (1 MiB chunk + tag + header).
MAX_PACKET_SIZE = 1024 * 1024 + 8192


def _template(name: str) -> str:
    return resources.files("lerec.deploy").joinpath("mosquitto", name).read_text()


#: lowest port handed out by :func:`free_ports` (below it: well-known and registered services)
PORT_FLOOR = 20000


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range of ports for outgoing connections (Linux; the IANA default else)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[:2]
        return int(low), int(high)
    except (OSError, ValueError):
        return 49152, 65535


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` different loopback ports nothing listens on, taken *below* the kernel's
    ephemeral range when it leaves room: a port from that range may be given to an outgoing
    connection (a client reconnecting to a restarting broker may even connect to itself on
    it) between the moment it is chosen and the moment a server binds it again."""
    low, _ = _ephemeral_range()
    candidates: list[int] = []
    if low - PORT_FLOOR >= 4 * n:
        candidates = random.SystemRandom().sample(range(PORT_FLOOR, low), min(low - PORT_FLOOR,
                                                                             64 * n))
    socks: list[socket.socket] = []
    try:
        for port in candidates:
            if len(socks) == n:
                break
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            socks.append(s)
        while len(socks) < n:  # no room below the range (or all taken): let the kernel pick
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def render(pki: Pki, data_dir: Path, port: int, bind: str = "127.0.0.1") -> Path:
    """Write ``mosquitto.conf`` and ``acl`` into ``data_dir``; return the config path."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "persist").mkdir(exist_ok=True)
    acl = data_dir / "acl"
    # The hub regenerates pki/acl on enroll/revoke (revoked recorders denied); fall back to the
    # plain template for a PKI that never saw a fleet command.
    acl.write_text(pki.acl.read_text() if pki.acl.exists() else _template("acl.template"))
    conf = Template(_template("mosquitto.conf.template")).substitute(
        user_line="user root" if os.geteuid() == 0 else "",
        port=port,
        bind=bind,
        cafile=pki.ca_cert,
        certfile=pki.broker_cert,
        keyfile=pki.broker_key,
        crlfile=pki.crl,
        aclfile=acl,
        max_packet_size=MAX_PACKET_SIZE,
        persistence_dir=data_dir / "persist",
    )
    path = data_dir / "mosquitto.conf"
    path.write_text(conf)
    return path


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )
    if not found:
        raise FileNotFoundError(
            "mosquitto is not installed: run 'apt-get install mosquitto' (./dev.sh up does it)"
        )
    return found


class Broker:
    """A mosquitto child process with lerec's TLS/ACL configuration.

    ``with Broker(pki, data_dir) as b:`` starts it on a free loopback port (``b.port``) and
    stops it on exit; ``restart()`` stops and starts it again on the same port.
    """

    def __init__(self, pki: Pki, data_dir: Path, port: int | None = None) -> None:
        self.pki = pki
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "mosquitto.log"

    def start(self, timeout: float = 10.0) -> None:
        conf = render(self.pki, self.data_dir, self.port)
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(conf)], stdout=logf, stderr=subprocess.STDOUT
        )
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self.proc.returncode}; see {self.log_path}:\n"
                    + self.log_path.read_text(errors="replace")[-2000:]
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"mosquitto did not listen on port {self.port} within {timeout}s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop and start again on the same port (persistent sessions survive), optionally
        staying down for ``down_seconds`` first."""
        self.stop()
        if down_seconds:
            time.sleep(down_seconds)
        self.start()

    def reload(self) -> None:
        """Re-render config and ACL, then SIGHUP mosquitto (re-reads config and ACL)."""
        render(self.pki, self.data_dir, self.port)
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
