"""Cluster intent records in etcd, and the `token://` client that reaches them through the discovery daemon.

Intent is what operators decided about the cluster (a node's availability and labels, a removed
node), as opposed to what is observed (membership, containers). It has no lease: it survives every
agent, manager and discovery restart. Keys (values are opaque bytes, JSON written by the manager):

    /swarmd/clusters/<hash>/intent/<key>     for token:// clusters (key e.g. "nodes/<node id>")
    <PREFIX>/intent/<key>                    for etcd:// clusters

`IntentRecords` is used by the discovery daemon and by managers with `etcd://` URLs alike;
`TokenIntents` speaks the discovery daemon's intent calls. Both offer the same four methods
(`list`, `put`, `delete`, `session`), which `swarmd.manager.intent` wraps.
"""
from __future__ import annotations

from typing import AsyncIterator

import grpc

from swarmd.common.membership.etcd_store import (EtcdStore, StoreUnavailable, intent_prefix, is_removed,
                                                node_intent_key, removed_message)
from swarmd.proto.swarm.v1 import discovery_pb2

# (kind, key, value): kind "put" | "delete" | "synced" (key and value empty)
IntentChange = tuple[str, str, bytes]

CALL_TIMEOUT = 5.0


def valid_key(key: str) -> str | None:
    """Why a relative intent key cannot be stored, or None."""
    if not key or key.startswith("/") or ".." in key.split("/") or len(key) > 512:
        return f"invalid intent key {key!r}"
    return None


class IntentRecords:
    """The intent records under one cluster's base key."""

    def __init__(self, store: EtcdStore, base: str):
        self.store = store
        self.prefix = intent_prefix(base)

    async def get(self, key: str) -> bytes | None:
        kv = await self.store.run(lambda c: c.get((self.prefix + key).encode()))
        return kv.value if kv is not None else None

    async def list(self) -> list[tuple[str, bytes]]:
        listing = await self.store.run(lambda c: c.get_prefix(self.prefix.encode()))
        return [(kv.key.decode()[len(self.prefix):], kv.value) for kv in listing]

    async def put(self, key: str, value: bytes) -> None:
        await self.store.run(lambda c: c.put((self.prefix + key).encode(), value))

    async def delete(self, key: str) -> None:
        await self.store.run(lambda c: c.delete((self.prefix + key).encode()))

    async def session(self) -> AsyncIterator[IntentChange]:
        """Every record as "put", then "synced", then changes; raises StoreUnavailable."""
        prefix = self.prefix.encode()
        listing = await self.store.run(lambda c: c.get_prefix(prefix))
        for kv in listing:
            yield "put", kv.key.decode()[len(self.prefix):], kv.value
        yield "synced", "", b""
        async for event in self.store.watch_prefix(prefix, listing.header.revision + 1):
            key = event.kv.key.decode(errors="replace")[len(self.prefix):]
            if event.kind == "DELETE":
                yield "delete", key, b""
            else:
                yield "put", key, event.kv.value


_KINDS = {
    discovery_pb2.IntentEvent.KIND_PUT: "put",
    discovery_pb2.IntentEvent.KIND_DELETE: "delete",
    discovery_pb2.IntentEvent.KIND_SYNCED: "synced",
}


class TokenIntents:
    """The intent calls of the discovery daemon for one cluster token (`stub`: a DiscoveryStub)."""

    def __init__(self, stub, token: str, addr: str):
        self.stub = stub
        self.token = token
        self.addr = addr

    def _failed(self, err: grpc.RpcError) -> Exception:
        return StoreUnavailable(f"discovery at {self.addr}: {err.details() or err.code().name.lower()}")

    async def list(self) -> list[tuple[str, bytes]]:
        try:
            reply = await self.stub.ListIntents(discovery_pb2.ListIntentsRequest(token=self.token),
                                                timeout=CALL_TIMEOUT)
        except grpc.RpcError as err:
            raise self._failed(err) from None
        return [(r.key, r.value) for r in reply.records]

    async def put(self, key: str, value: bytes) -> None:
        record = discovery_pb2.IntentRecord(key=key, value=value)
        try:
            await self.stub.PutIntent(discovery_pb2.PutIntentRequest(token=self.token, record=record),
                                      timeout=CALL_TIMEOUT)
        except grpc.RpcError as err:
            raise self._failed(err) from None

    async def delete(self, key: str) -> None:
        try:
            await self.stub.DeleteIntent(discovery_pb2.DeleteIntentRequest(token=self.token, key=key),
                                         timeout=CALL_TIMEOUT)
        except grpc.RpcError as err:
            raise self._failed(err) from None

    async def session(self) -> AsyncIterator[IntentChange]:
        call = self.stub.WatchIntents(discovery_pb2.WatchIntentsRequest(token=self.token))
        try:
            async for event in call:
                kind = _KINDS.get(event.kind)
                if kind is not None:
                    yield kind, event.record.key, event.record.value
        except grpc.RpcError as err:
            raise self._failed(err) from None
        finally:
            call.cancel()


__all__ = ["IntentRecords", "TokenIntents", "IntentChange", "intent_prefix", "node_intent_key",
           "is_removed", "removed_message", "valid_key"]
