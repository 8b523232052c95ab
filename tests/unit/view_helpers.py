"""Waits shared by the unit tests that drive a real `ClusterView` over in-memory hollow engines."""
from __future__ import annotations

import asyncio

from bench.memory import node_of
from swarmd.manager.cluster import ClusterView


async def until(cond) -> None:
    for _ in range(1000):
        if cond():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the view did not get there")


async def joined(cluster: ClusterView, engines: dict) -> list[str]:
    """Every engine joined as a node, the view synced; the node IDs, in order."""
    ids = list(engines)
    for i, nid in enumerate(ids):
        cluster.node_joined(node_of(nid, engines[nid], i))
    cluster.synced.set()
    cluster.intents_synced.set()
    cluster.reconcile_standing()
    await until(lambda: all(v.listed and v.connected for v in cluster.nodes.values()))
    return ids
