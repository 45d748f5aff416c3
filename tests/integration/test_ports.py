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


def test_ports_come_from_below_the_ephemeral_range():
    """A port of the ephemeral range may be taken by an outgoing connection (or a client
    reconnecting to a restarting broker may connect to itself on it)."""
    from lerec.deploy.broker import PORT_FLOOR, _ephemeral_range

    low, _ = _ephemeral_range()
    assert low - PORT_FLOOR >= 256, "this machine's ephemeral range leaves no room below it"
    assert all(PORT_FLOOR <= p < low for p in free_ports(16))
