"""Per-client request rate limits: a token bucket per client address.

A client that sends more than `rate` requests a second (after a burst of `burst`) is answered
429 until its bucket refills, so one runaway script cannot starve the cluster's other users.
Clients on the unix socket share one bucket.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

_MAX_CLIENTS = 10_000      # buckets kept; the idlest are dropped beyond this


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    def __init__(self, rate: float, burst: float | None = None, clock=time.monotonic):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(rate * 2, 1.0)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, client: str) -> bool:
        now = self._clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= _MAX_CLIENTS:
                self._evict(now)
            bucket = self._buckets[client] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def _evict(self, now: float) -> None:
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.stamp) * self.rate >= self.burst]
        for k in full or sorted(self._buckets, key=lambda k: self._buckets[k].stamp)[: len(self._buckets) // 2]:
            del self._buckets[k]


def client_of(peer: str) -> str:
    """`127.0.0.1:5555` -> `127.0.0.1`: a client is an address, whatever its source ports."""
    if peer == "unix" or ":" not in peer:
        return peer
    return peer.rsplit(":", 1)[0]
