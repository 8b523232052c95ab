"""Daemon ports come from below the kernel's ephemeral range: outgoing connections never take them."""
from __future__ import annotations

import socket
from pathlib import Path

from swarmd.localcluster.processes import free_port


def test_a_free_port_is_below_the_ephemeral_range_and_free():
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(1024 <= p < low for p in ports) and len(ports) > 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports.pop()))
