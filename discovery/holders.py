"""Who holds a certificate now, for the CA rotation: one etcd record per node with an open
WatchCertificate stream, under a lease the stream keeps alive. The record outlives its stream by
the lease's TTL: a node renewing (its stream closed, the next one not open yet) is still counted,
as behind, so the rotation waits for it; a node gone for good holds it up LEASE_SECONDS at most.

    /swarmd/ca-holders/<cluster ID>/<node ID>     JSON {"signer": digest, "bundle": [digest, …]}

Every discovery daemon sharing the CA directory reads the same records, so the rotation moves on
only when the nodes of every daemon have caught up.
"""
from __future__ import annotations

import json

from swarmd.common.ca_rotation import Holder
from swarmd.common.membership.etcd_store import cluster_key, intent_prefix, is_removed, node_intent_key

ROOT = "/swarmd/ca-holders/"
LEASE_SECONDS = 15
REFRESH_EVERY = 5.0


def key(cluster: str, name: str) -> bytes:
    return f"{ROOT}{cluster}/{name}".encode()


def decode(raw_key: bytes, value: bytes) -> Holder | None:
    try:
        doc = json.loads(value)
        return Holder(raw_key.decode()[len(ROOT):], str(doc["signer"]), frozenset(map(str, doc["bundle"])))
    except (ValueError, KeyError, TypeError):
        return None


class Holders:
    """The records in etcd (the store's `run` maps failures to StoreUnavailable)."""

    def __init__(self, store):
        self.store = store

    async def hold(self, cluster: str, name: str, signer: str, bundle: list[str]) -> int:
        """Records the holder under a new lease; the lease ID, for `keep` and `release`."""
        value = json.dumps({"signer": signer, "bundle": sorted(bundle)}).encode()

        async def op(c) -> int:
            lease = await c.lease(LEASE_SECONDS)
            await c.put(key(cluster, name), value, lease=lease.id)
            return lease.id
        return await self.store.run(op)

    async def keep(self, lease_id: int) -> None:
        await self.store.run(lambda c: c.refresh_lease(lease_id))

    async def list(self) -> list[Holder]:
        listing = await self.store.run(lambda c: c.get_prefix(ROOT.encode()))
        return [h for h in (decode(kv.key, kv.value) for kv in listing) if h is not None]

    async def removed(self, holder: Holder) -> bool:
        """Whether the holder's node was removed from its cluster (`docker node rm`): it can renew no
        more, so it holds no rotation back."""
        cluster, _, node_id = holder.name.partition("/")
        removal = (intent_prefix(cluster_key(cluster)) + node_intent_key(node_id)).encode()
        kv = await self.store.run(lambda c: c.get(removal))
        return kv is not None and is_removed(kv.value)
