"""Ports for the services a test (or the demo) starts: several at once are all different."""

from __future__ import annotations

import socket

from lerec.deploy.broker import free_ports


def test_free_ports_are_different_and_free():
    ports = free_ports(64)
    assert len(set(ports)) == 64, "one at a time, the kernel may hand out the same port twice"
    for port in ports[:8]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # released: free to bind
