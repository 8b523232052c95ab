"""The primary's intent pass (`ClusterView.write_container_intents`) reads again only the nodes
changed since its last pass: what it writes must be what a pass over every node would write.

A real `ClusterView` over in-memory hollow engines (read through `bench.memory.InProcessAgent`)
and the in-memory intent store."""
from __future__ import annotations

import asyncio
import secrets

from bench.memory import InProcessAgent, hollow_engines, node_of
from swarmd.agent.hollow import HollowEngine
from swarmd.manager.cluster import ClusterView
from swarmd.manager.container_records import SWARM_ID_LABEL
from swarmd.manager.intent import MemoryIntentStore
from swarmd.manager.scheduler.container_spec import RESCHEDULE_LABEL
from tests.unit.view_helpers import joined, until


def _reschedulable(engine, name: str):
    labels = {SWARM_ID_LABEL: secrets.token_hex(32), RESCHEDULE_LABEL: '["on-node-failure"]'}
    return engine.add_container(name, {"Image": "busybox", "Labels": labels}, running=True)


async def _pass(cluster: ClusterView) -> dict[str, str]:
    """One pass; then the same pass over every node again (it must find nothing more to write).
    Swarm ID -> node ID of the records written."""
    await cluster.write_container_intents()
    written = {sid: rec.node_id for sid, rec in cluster.container_intents.items()}
    cluster._intents_full, cluster._intents_written_for = True, None      # noqa: SLF001 (the check)
    await cluster.write_container_intents()
    assert {sid: rec.node_id for sid, rec in cluster.container_intents.items()} == written
    return written


def test_the_intent_pass_reads_changed_nodes_only_and_writes_what_a_whole_pass_would():
    async def scenario():
        engines = hollow_engines(6, 3)
        cluster = ClusterView(client_factory=lambda node: InProcessAgent(engines[node.info.id]))
        cluster.intent_store = MemoryIntentStore()
        ids = await joined(cluster, engines)
        assert await _pass(cluster) == {}                  # no container has a reschedule policy

        a = _reschedulable(engines[ids[0]], "ip-a")
        b = _reschedulable(engines[ids[1]], "ip-b")
        await until(lambda: a.id in cluster.nodes[ids[0]].containers and b.id in cluster.nodes[ids[1]].containers)
        sid_a, sid_b = (cluster.nodes[n].containers[c.id].swarm_id for n, c in ((ids[0], a), (ids[1], b)))
        assert await _pass(cluster) == {sid_a: ids[0], sid_b: ids[1]}

        c = _reschedulable(engines[ids[2]], "ip-c")         # one node changed: one record more
        await until(lambda: c.id in cluster.nodes[ids[2]].containers)
        sid_c = cluster.nodes[ids[2]].containers[c.id].swarm_id
        assert await _pass(cluster) == {sid_a: ids[0], sid_b: ids[1], sid_c: ids[2]}

        await engines[ids[0]].container_action(a.id, "remove", {"force": "1"})   # removed: its record goes
        await until(lambda: a.id not in cluster.nodes[ids[0]].containers)
        assert await _pass(cluster) == {sid_b: ids[1], sid_c: ids[2]}

        task = cluster.nodes[ids[1]].task
        cluster.node_left(ids[1], "lease expired")          # down: its record stands for the container
        await until(task.done)
        assert await _pass(cluster) == {sid_b: ids[1], sid_c: ids[2]}

        cluster.remove_node(ids[4])                          # a node leaves the view: every node read again
        d = _reschedulable(engines[ids[3]], "ip-d")
        await until(lambda: d.id in cluster.nodes[ids[3]].containers)
        sid_d = cluster.nodes[ids[3]].containers[d.id].swarm_id
        assert await _pass(cluster) == {sid_b: ids[1], sid_c: ids[2], sid_d: ids[3]}

        extra = HollowEngine("joins-later")                  # a node joins: it alone is read again
        engines["joins-later-id"] = extra
        e = _reschedulable(extra, "ip-e")
        cluster.node_joined(node_of("joins-later-id", extra, 99))
        await until(lambda: "joins-later-id" in cluster.nodes and e.id in cluster.nodes["joins-later-id"].containers)
        sid_e = cluster.nodes["joins-later-id"].containers[e.id].swarm_id
        assert await _pass(cluster) == {sid_b: ids[1], sid_c: ids[2], sid_d: ids[3], sid_e: "joins-later-id"}
        cluster.remove_node("joins-later-id")                # … and leaves: its record stays, as a down node's
        assert await _pass(cluster) == {sid_b: ids[1], sid_c: ids[2], sid_d: ids[3], sid_e: "joins-later-id"}
        await cluster.close()

    asyncio.run(scenario())
