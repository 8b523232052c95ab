"""Cluster intent on the manager side: what operators decided about nodes, kept durably.

A node's availability (active, pause, drain) and labels, and whether it was removed, are intent:
`docker node update` and `docker node rm` on the primary write them, and every manager watches
them into its cluster view, so they survive agent, manager and primary restarts. `NodeIntent`
and its JSON form are pure; `IntentStore` is the one interface, with three implementations:

- `RecordsIntentStore` over etcd (`etcd://` managers reach etcd themselves; `token://` managers
  through the discovery daemon's intent calls): durable;
- `MemoryIntentStore` for `nodes://` and `file://`, which have no etcd: intent lives as long as
  the manager process and is lost when it restarts (documented in docs/operations.md).
"""
from __future__ import annotations

import abc
import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

from swarmd.common import logs
from swarmd.common.membership.watch import Backoff

log = logs.get("manager.intent")

AVAILABILITIES = ("active", "pause", "drain")
NODE_KEY_PREFIX = "nodes/"


@dataclass(frozen=True)
class NodeIntent:
    """What was decided about one node. `version` counts its writes (Version.Index of the API)."""

    availability: str = "active"
    labels: dict[str, str] = field(default_factory=dict)
    removed: bool = False
    version: int = 1

    def to_json(self) -> bytes:
        return json.dumps({"availability": self.availability, "labels": self.labels,
                           "removed": self.removed, "version": self.version}, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "NodeIntent":
        """A record as stored; an unreadable one (another version's) reads as the default intent."""
        try:
            doc = json.loads(raw)
            availability = doc.get("availability") or "active"
            labels = {str(k): str(v) for k, v in (doc.get("labels") or {}).items()}
            return cls(availability if availability in AVAILABILITIES else "active", labels,
                       bool(doc.get("removed")), int(doc.get("version") or 1))
        except (ValueError, AttributeError, TypeError):
            log.warning("unreadable node intent record ignored")
            return cls()

    def updated(self, **changes) -> "NodeIntent":
        return replace(self, version=self.version + 1, **changes)


def node_key(node_id: str) -> str:
    return NODE_KEY_PREFIX + node_id


# (kind, key, value): "put" | "delete" | "synced" | "reset" (a new listing follows)
IntentChange = tuple[str, str, bytes]


class IntentStore(abc.ABC):
    """Where intent is kept: written by the primary, watched by every manager."""

    durable = True

    @abc.abstractmethod
    async def put(self, key: str, value: bytes) -> None: ...

    @abc.abstractmethod
    async def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    def watch(self) -> AsyncIterator[IntentChange]:
        """Runs until cancelled: every record as "put", "synced", then changes; after a lost
        connection "reset", every record again and "synced" (the consumer replaces what it knew)."""

    async def evict(self, node_id: str) -> None:
        """Ends the node's live registration at once (a forced `docker node rm`)."""
        return None


class MemoryIntentStore(IntentStore):
    """Intent in this process only (`nodes://`, `file://`): not durable."""

    durable = False

    def __init__(self):
        self._records: dict[str, bytes] = {}
        self._watchers: set[asyncio.Queue] = set()

    async def put(self, key: str, value: bytes) -> None:
        self._records[key] = value
        for q in self._watchers:
            q.put_nowait(("put", key, value))

    async def delete(self, key: str) -> None:
        self._records.pop(key, None)
        for q in self._watchers:
            q.put_nowait(("delete", key, b""))

    async def watch(self) -> AsyncIterator[IntentChange]:
        q: asyncio.Queue = asyncio.Queue()
        self._watchers.add(q)
        try:
            for key, value in list(self._records.items()):
                yield "put", key, value
            yield "synced", "", b""
            while True:
                yield await q.get()
        finally:
            self._watchers.discard(q)


class RecordsIntentStore(IntentStore):
    """Intent records in etcd (`records`: IntentRecords or TokenIntents); `evict` ends a node's
    registration (an async callable taking the node ID)."""

    def __init__(self, records, evict=None, where: str = ""):
        self.records = records
        self._evict = evict
        self.where = where

    async def put(self, key: str, value: bytes) -> None:
        await self.records.put(key, value)

    async def delete(self, key: str) -> None:
        await self.records.delete(key)

    async def evict(self, node_id: str) -> None:
        if self._evict is not None:
            await self._evict(node_id)

    async def watch(self) -> AsyncIterator[IntentChange]:
        backoff = Backoff()
        while True:
            yield "reset", "", b""
            try:
                async for change in self.records.session():
                    if change[0] == "synced":
                        backoff.reset()
                    yield change
                raise ConnectionError("intent stream ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # etcd or the discovery daemon went away: list and watch anew
                delay = backoff.next()
                log.warning("intent watch lost; reconnecting", source=self.where, error=str(exc) or type(exc).__name__,
                            retry_in=f"{delay:.2f}s")
                await asyncio.sleep(delay)


def open_intent_store(membership) -> IntentStore:
    """The intent store that goes with a manager's membership (as `open_election` chooses)."""
    from swarmd.common.membership.etcd_client import EtcdMembership
    from swarmd.common.membership.intents import IntentRecords, TokenIntents
    from swarmd.common.membership.token_client import TokenMembership
    from swarmd.proto.swarm.v1 import discovery_pb2
    if isinstance(membership, TokenMembership):
        async def deregister(node_id: str) -> None:
            await membership.stub.Deregister(discovery_pb2.DeregisterRequest(token=membership.token, node_id=node_id),
                                             timeout=5.0)
        return RecordsIntentStore(TokenIntents(membership.stub, membership.token, membership.addr), deregister,
                                  where=f"discovery at {membership.addr}")
    if isinstance(membership, EtcdMembership):
        async def deregister_etcd(node_id: str) -> None:
            await membership.nodes.deregister(node_id)
        return RecordsIntentStore(IntentRecords(membership.store, membership.nodes.base), deregister_etcd,
                                  where=membership.where)
    return MemoryIntentStore()
