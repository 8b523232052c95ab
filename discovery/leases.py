"""Heartbeats of registrations this daemon has already checked: renewed without reading the node.

A heartbeat names a node and the lease it registered under. `NodeSet.heartbeat` reads the node's
record to check that pairing, then renews the lease: two etcd calls a heartbeat, the read being a
third of this daemon's CPU and half of etcd's (docs/benchmarks.md, "The fleet at rest"). The read
is needed once per pairing only: a registration that replaces a node's record, and a
deregistration, revoke the lease they replace (`NodeSet.register`, `NodeSet.deregister`), so a
pairing once right stays right until its lease is gone, which the renewal itself then answers
(no time left: LeaseGone), at this daemon or any other. The same reasoning lets that read be a
serializable (possibly stale) one. So this daemon remembers the pairings it has checked or
registered, and renews those alone; loss detection is unchanged (a lease still runs out three
heartbeats after the last one).
"""
from __future__ import annotations

from collections import OrderedDict

from swarmd.common.membership.etcd_store import EtcdStore, LeaseGone

# pairings remembered: every node a daemon serves, many times over; the least recently renewed
# go first (a node killed or moved to another daemon), and one forgotten is only read again
LIMIT = 50_000


class CheckedLeases:
    """(cluster, node ID) -> the lease its heartbeats were found to hold."""

    def __init__(self, limit: int = LIMIT):
        self.limit = limit
        self._leases: OrderedDict[tuple[str, str], int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._leases)

    def holds(self, cluster: str, node_id: str, lease_id: int) -> bool:
        """True when this node was found (or registered) holding this very lease."""
        key = (cluster, node_id)
        if lease_id and self._leases.get(key) == lease_id:
            self._leases.move_to_end(key)
            return True
        return False

    def add(self, cluster: str, node_id: str, lease_id: int) -> None:
        key = (cluster, node_id)
        self._leases[key] = lease_id
        self._leases.move_to_end(key)
        while len(self._leases) > self.limit:
            self._leases.popitem(last=False)

    def forget(self, cluster: str, node_id: str) -> None:
        self._leases.pop((cluster, node_id), None)


async def renew(store: EtcdStore, node_id: str, lease_id: int) -> int:
    """Renews a checked lease; its remaining seconds. Raises LeaseGone (revoked or run out)."""
    async def op(c) -> int:
        ttl = await store.keeper(c).refresh(lease_id)
        if ttl <= 0:
            raise LeaseGone(f"lease {lease_id:x} of node {node_id[:12]} has expired")
        return ttl

    return await store.run(op)
