"""Which of several discovery daemons an agent talks to first.

An agent given `--discovery-addr A,B,C` opens one gRPC channel over the list, and such a channel
uses the first address that answers. Were the list taken as written, every agent would heartbeat
through A and the other daemons would only wait for A to fail. Each agent therefore starts the
list at a place chosen by a hash of its node ID and keeps the written order from there (A,B,C;
B,C,A; C,A,B): the fleet's heartbeats spread evenly over the daemons, the same agent comes back to
the same daemon after a restart, and when its daemon fails it moves on to the next, as before.
"""
from __future__ import annotations

import hashlib


def split(addrs: str) -> list[str]:
    """The addresses of a `HOST:PORT,HOST:PORT` list, blanks dropped."""
    return [a.strip() for a in addrs.split(",") if a.strip()]


def start_index(key: str, count: int) -> int:
    """Where `key`'s walk through `count` addresses starts; the same on every machine and run
    (Python's own `hash` of a string is salted per process, so it would not do)."""
    if count <= 1 or not key:
        return 0
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % count


def spread(addrs: str, key: str) -> str:
    """`addrs` rotated to start at `key`'s address (see the module's docstring); one address, or
    an empty key, is returned unchanged."""
    parts = split(addrs)
    if len(parts) <= 1 or not key:
        return addrs
    i = start_index(key, len(parts))
    return ",".join(parts[i:] + parts[:i])
