"""A membership watch that survives its source: reconnect, re-list, emit the difference.

Every scheme provides sessions: an async iterator of `(kind, node)` that yields the current
nodes as "joined", then "synced", then changes, and raises (or ends) when its source fails.
`converging_watch` runs sessions one after another with backoff and keeps the consumer's view
right: after a reconnection it emits only what changed while it was away.
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator, Callable

from swarmd.proto.swarm.v1 import types_pb2
from swarmd.common import logs
from swarmd.common.membership import MemberEvent, MembershipError

Change = tuple[str, types_pb2.Node | None]
SessionFactory = Callable[[], AsyncIterator[Change]]

LEFT_REASON = "node left the cluster (lease expired or deregistered)"


class Backoff:
    """Delays doubling from `initial` to `maximum`; `reset` after a success."""

    def __init__(self, initial: float = 0.25, maximum: float = 5.0):
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


def left_node(node: types_pb2.Node, reason: str = LEFT_REASON) -> types_pb2.Node:
    gone = types_pb2.Node()
    gone.CopyFrom(node)
    gone.state = types_pb2.NODE_STATE_UNHEALTHY
    gone.error = reason
    return gone


def diff(known: dict[str, types_pb2.Node], listing: dict[str, types_pb2.Node]) -> list[MemberEvent]:
    """The events that turn `known` into `listing` (joined, updated, then left)."""
    events = []
    for node_id, node in listing.items():
        old = known.get(node_id)
        if old is None:
            events.append(MemberEvent("joined", node))
        elif old != node:
            events.append(MemberEvent("updated", node))
    for node_id, node in known.items():
        if node_id not in listing:
            events.append(MemberEvent("left", left_node(node)))
    return events


def apply(known: dict[str, types_pb2.Node], kind: str, node: types_pb2.Node) -> MemberEvent | None:
    """Applies one live change to `known`; returns the event to emit, or None if nothing changed."""
    node_id = node.info.id
    if kind == "left":
        old = known.pop(node_id, None)
        if old is None:
            return None
        return MemberEvent("left", left_node(old, node.error or LEFT_REASON))
    old = known.get(node_id)
    known[node_id] = node
    if old is None:
        return MemberEvent("joined", node)
    if old == node:
        return None
    return MemberEvent("updated", node)


async def converging_watch(open_session: SessionFactory, source: str,
                           log: logs.Logger) -> AsyncIterator[MemberEvent]:
    """Runs forever (until cancelled); MembershipError from a session (e.g. unknown token) ends it."""
    known: dict[str, types_pb2.Node] = {}
    backoff = Backoff()
    failing = False
    while True:
        listing: dict[str, types_pb2.Node] = {}
        synced = False
        try:
            async for kind, node in open_session():
                if not synced:
                    if kind == "synced":
                        events = diff(known, listing)
                        known = dict(listing)
                        for event in events:
                            yield event
                        synced = True
                        backoff.reset()
                        if failing:
                            log.info("membership watch resumed", source=source, nodes=len(known))
                            failing = False
                        yield MemberEvent("synced", None)
                    elif kind in ("joined", "updated"):
                        listing[node.info.id] = node
                    elif kind == "left":
                        listing.pop(node.info.id, None)
                    continue
                if kind == "synced":
                    continue
                event = apply(known, kind, node)
                if event is not None:
                    yield event
            raise ConnectionError("membership stream ended")
        except (asyncio.CancelledError, MembershipError):
            raise
        except Exception as exc:  # the source went away: reconnect and converge
            delay = backoff.next()
            if not failing:
                log.warning("membership watch lost; reconnecting with backoff", source=source,
                            error=str(exc) or type(exc).__name__)
                failing = True
            else:
                log.debug("membership watch still failing", source=source, error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
