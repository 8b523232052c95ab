"""The placement path on a live cluster view whose agents are kept in memory: a create and a
rescheduled container hold the same name reservation and node placeholder while in flight, both
released whatever the outcome; the refusals carry the texts the API answers with."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable

import pytest

from swarmd.manager.agents import ReadBack
from swarmd.manager.cluster import ClusterView, NodeView
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.placement import InvalidCreate, InvalidName, NameInUse, NoNodeFits, Placement
from swarmd.manager.rescheduler import Rescheduler
from swarmd.manager.scheduler import Scheduler
from swarmd.manager.scheduler.container_spec import RESCHEDULE_LABEL
from swarmd.proto.swarm.v1 import types_pb2

MiB = 1 << 20
POLICY = {RESCHEDULE_LABEL: json.dumps(["on-node-failure"])}


class InMemoryAgent:
    """The calls the placement and the rescheduler make of a node's agent (swarmd's own gRPC
    client), answered from a dict of inspect documents; creates wait while `gate` is clear."""

    def __init__(self):
        self.docs: dict[str, dict] = {}
        self.gate = asyncio.Event()
        self.gate.set()
        self.creating = asyncio.Event()
        self.read_gate = asyncio.Event()       # read-backs of creates wait while it is clear
        self.read_gate.set()
        self.fail: ApiError | None = None

    async def create_container_at(self, name: str, body: dict) -> tuple[dict, int]:
        self.creating.set()
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        cid = uuid.uuid4().hex * 2
        self.docs[cid] = {"Id": cid, "Name": f"/{name or cid[:8]}", "Created": "2024-01-01T00:00:00Z",
                          "State": {"Status": "created", "Running": False},
                          "Config": {"Image": body["Image"], "Labels": body.get("Labels") or {}},
                          "HostConfig": body.get("HostConfig") or {}}
        return {"Id": cid, "Warnings": []}, time.time_ns()

    async def create_and_read(self, name: str, body: dict) -> tuple[dict, int, ReadBack]:
        result, done_at = await self.create_container_at(name, body)
        return result, done_at, ReadBack(*(await self.inspect_container_at(result["Id"])))

    async def create_then_read(self, name: str, body: dict) -> tuple[dict, int, Awaitable[ReadBack]]:
        result, done_at = await self.create_container_at(name, body)
        return result, done_at, self._read_back(result["Id"])

    async def _read_back(self, container_id: str) -> ReadBack:
        await self.read_gate.wait()
        return ReadBack(*(await self.inspect_container_at(container_id)))

    async def inspect_container_at(self, container_id: str, since: int = 0) -> tuple[dict, int]:
        if container_id not in self.docs:
            raise ApiError(404, f"No such container: {container_id}")
        return self.docs[container_id], time.time_ns()

    async def container_action_at(self, container_id: str, action: str, params=None) -> tuple[int, int]:
        assert action == "start"
        self.docs[container_id] = {**self.docs[container_id], "State": {"Status": "running", "Running": True}}
        return 204, time.time_ns()


def add_node(cluster: ClusterView, name: str, state=types_pb2.NODE_STATE_HEALTHY) -> NodeView:
    node = types_pb2.Node(state=state)
    node.info.id, node.info.name, node.info.addr = f"ID-{name}", name, f"{name}:4100"
    node.info.cpus, node.info.memory_bytes = 4, 8 << 30
    view = NodeView(node=node, client=InMemoryAgent(), connected=state == types_pb2.NODE_STATE_HEALTHY)
    cluster.nodes[view.id] = view
    return view


def in_flight(view: NodeView, name: str) -> bool:
    return any(p.name == name for p in view.pending)


async def test_a_create_holds_its_name_and_a_placeholder_until_the_view_shows_it():
    cluster = ClusterView(client_factory=lambda n: None)
    views = [add_node(cluster, n) for n in ("n1", "n2")]
    placement = Placement(cluster, Scheduler())
    for v in views:
        v.client.gate.clear()
    creating = asyncio.create_task(placement.create("/web", {"Image": "busybox", "HostConfig": {"Memory": 64 * MiB}}))
    await asyncio.wait_for(_any_creating(views), 5)
    chosen = next(v for v in views if v.client.creating.is_set())
    assert placement.is_reserved("web") and in_flight(chosen, "web")
    assert chosen.snapshot().reserved_memory == 64 * MiB
    with pytest.raises(NameInUse, match=r'"/web" is already in use by container "\(being created\)"'):
        await placement.create("web", {"Image": "busybox"})
    chosen.client.gate.set()
    placed = await creating
    assert placed.node is chosen and not placement.names_in_flight and not chosen.pending
    assert cluster.name_in_use("web").id == placed.id
    assert chosen.snapshot().reserved_memory == 64 * MiB     # now held by the record itself


async def test_a_create_answered_first_holds_its_name_and_place_until_its_read_back_is_stored():
    cluster = ClusterView(client_factory=lambda n: None)
    view = add_node(cluster, "n1")
    placement = Placement(cluster, Scheduler())
    view.client.read_gate.clear()
    placed = await placement.create("web", {"Image": "busybox", "HostConfig": {"Memory": 64 * MiB}},
                                    answer_first=True)
    # answered: the view does not show it yet, but the name and the memory stay held, and reads wait
    assert cluster.settling and placement.is_reserved("web") and in_flight(view, "web")
    assert cluster.name_in_use("web") is None and view.snapshot().reserved_memory == 64 * MiB
    with pytest.raises(NameInUse):
        await placement.create("web", {"Image": "busybox"}, answer_first=True)
    waiting = asyncio.create_task(cluster.settled())
    await asyncio.sleep(0)
    assert not waiting.done()
    view.client.read_gate.set()
    await asyncio.wait_for(waiting, 5)
    assert not cluster.settling and not placement.names_in_flight and not view.pending
    assert cluster.name_in_use("web").id == placed.id
    assert view.snapshot().reserved_memory == 64 * MiB


async def test_a_create_that_reschedules_is_stored_before_it_is_answered():
    cluster = ClusterView(client_factory=lambda n: None)
    view = add_node(cluster, "n1")
    placement = Placement(cluster, Scheduler())
    placed = await placement.create("db", {"Image": "busybox", "Labels": POLICY}, answer_first=True)
    assert not cluster.settling and cluster.name_in_use("db").id == placed.id


async def test_a_rescheduled_container_holds_the_same_reservation_and_placeholder():
    cluster = ClusterView(client_factory=lambda n: None)
    lost = add_node(cluster, "n1")
    target = add_node(cluster, "n2")
    placement = Placement(cluster, Scheduler())
    placed = await placement.create("db", {"Image": "busybox", "Labels": POLICY, "HostConfig": {"Memory": 32 * MiB},
                                           "Env": ["constraint:node==~n1"]})
    await lost.client.container_action_at(placed.id, "start")
    await cluster.refresh_container(lost, placed.id)
    lost.node.state, lost.connected = types_pb2.NODE_STATE_UNHEALTHY, False
    lost.changed()
    cluster.synced.set()
    target.client.gate.clear()
    rescheduler = Rescheduler(cluster, placement)
    passing = asyncio.create_task(rescheduler.tick())
    await asyncio.wait_for(target.client.creating.wait(), 5)
    assert placement.is_reserved("db") and in_flight(target, "db")
    assert target.snapshot().reserved_memory == 32 * MiB
    with pytest.raises(NameInUse):
        await placement.create("db", {"Image": "busybox"})
    target.client.gate.set()
    await passing
    moved = cluster.name_in_use("db")
    assert moved.node_id == target.id and moved.state["Running"] and moved.labels[RESCHEDULE_LABEL] == POLICY[RESCHEDULE_LABEL]
    assert not placement.names_in_flight and not target.pending


async def test_a_failed_create_releases_the_name_and_the_placeholder():
    cluster = ClusterView(client_factory=lambda n: None)
    view = add_node(cluster, "n1")
    view.client.fail = ApiError(404, "pull access denied")
    placement = Placement(cluster, Scheduler())
    with pytest.raises(ApiError, match="pull access denied"):
        await placement.create("web", {"Image": "nowhere/nothing", "HostConfig": {"Memory": 64 * MiB}})
    assert not placement.names_in_flight and not view.pending and view.snapshot().reserved_memory == 0
    view.client.fail = None
    assert (await placement.create("web", {"Image": "busybox"})).node is view


async def test_refusals_say_what_the_api_answers():
    cluster = ClusterView(client_factory=lambda n: None)
    placement = Placement(cluster, Scheduler())
    with pytest.raises(InvalidName, match=r"^Invalid container name \(-x\), only \[a-zA-Z0-9\]\[a-zA-Z0-9_.-\] are allowed$"):
        await placement.create("-x", {"Image": "busybox"})
    with pytest.raises(InvalidCreate, match="^No command specified$"):
        await placement.create("xy", {})
    with pytest.raises(InvalidCreate, match="^image is required$"):
        await placement.create("xy", {"Cmd": ["true"]})
    with pytest.raises(InvalidCreate, match="too many reschedule policies"):
        await placement.create("xy", {"Image": "busybox", "Env": ["reschedule:off", "reschedule:on-node-failure"]})
    with pytest.raises(NoNodeFits, match="no healthy node available in the cluster"):
        await placement.create("xy", {"Image": "busybox"})
    assert not placement.names_in_flight


async def _any_creating(views: list[NodeView]) -> None:
    while not any(v.client.creating.is_set() for v in views):
        await asyncio.sleep(0.005)


class FirstCreateFails(InMemoryAgent):
    """An agent whose create fails while the cluster-wide `failures` budget lasts, with `error`."""

    def __init__(self, attempts: list[str], failures: list[int], error: ApiError, name: str):
        super().__init__()
        self.attempts, self.failures, self.error, self.name = attempts, failures, error, name

    async def create_container_at(self, name: str, body: dict) -> tuple[dict, int]:
        self.attempts.append(self.name)
        if self.failures[0] > 0:
            self.failures[0] -= 1
            raise self.error
        return await super().create_container_at(name, body)


def flaky_cluster(failures: int, error: ApiError, nodes=("n1", "n2", "n3")) -> tuple[ClusterView, list[str]]:
    cluster = ClusterView(client_factory=lambda n: None)
    attempts: list[str] = []
    budget = [failures]
    for name in nodes:
        view = add_node(cluster, name)
        view.client = FirstCreateFails(attempts, budget, error, name)
    return cluster, attempts


async def test_createretry_tries_another_node_after_a_failed_create():
    cluster, attempts = flaky_cluster(1, ApiError(500, "engine broke"))
    placed = await Placement(cluster, Scheduler(create_retry=1)).create("/retried", {"Image": "busybox"})
    assert len(attempts) == 2 and attempts[0] != attempts[1], attempts
    assert placed.node.name == attempts[1]
    assert cluster.find_container("retried").node_name == attempts[1]
    assert not any(v.pending for v in cluster.nodes.values())


async def test_without_createretry_a_failed_create_is_the_answer():
    cluster, attempts = flaky_cluster(1, ApiError(500, "engine broke"))
    with pytest.raises(ApiError, match="engine broke"):
        await Placement(cluster, Scheduler()).create("/once", {"Image": "busybox"})
    assert len(attempts) == 1
    assert not Placement(cluster, Scheduler()).is_reserved("once")


async def test_createretry_stops_at_its_count_and_answers_the_engines_words():
    cluster, attempts = flaky_cluster(5, ApiError(500, "engine broke"))
    with pytest.raises(ApiError, match="engine broke"):
        await Placement(cluster, Scheduler(create_retry=2)).create("/twice", {"Image": "busybox"})
    assert len(attempts) == 3 and len(set(attempts)) == 3, attempts


async def test_createretry_never_retries_what_every_node_would_refuse():
    for status in (400, 409):
        cluster, attempts = flaky_cluster(1, ApiError(status, "refused by the engine"))
        with pytest.raises(ApiError, match="refused by the engine"):
            await Placement(cluster, Scheduler(create_retry=2)).create(f"/r{status}", {"Image": "busybox"})
        assert len(attempts) == 1


async def test_read_backs_of_one_container_are_stored_in_the_order_of_its_changes():
    cluster = ClusterView(client_factory=lambda n: None)
    view = add_node(cluster, "n1")
    placed = await Placement(cluster, Scheduler()).create("web", {"Image": "busybox"})
    doc = view.client.docs[placed.id]
    stopped = asyncio.get_running_loop().create_future()
    started = asyncio.get_running_loop().create_future()
    cluster.store_read_back_later(view, placed.id, 1, stopped)      # no read times: order is all there is
    cluster.store_read_back_later(view, placed.id, 2, started)
    started.set_result(ReadBack({**doc, "State": {"Status": "running", "Running": True}}, 0))
    await asyncio.sleep(0.01)
    assert cluster.settling                                          # the second waits for the first
    stopped.set_result(ReadBack({**doc, "State": {"Status": "exited", "Running": False}}, 0))
    await asyncio.wait_for(cluster.settled(), 5)
    assert not cluster.settling and cluster.find_container("web").state.get("Running")


async def test_a_read_back_that_does_not_come_holds_reads_up_only_for_a_while():
    cluster = ClusterView(client_factory=lambda n: None)
    view = add_node(cluster, "n1")
    view.client.read_gate.clear()                  # its engine hangs on the read
    await Placement(cluster, Scheduler()).create("web", {"Image": "busybox"}, answer_first=True)
    await asyncio.wait_for(cluster.settled(timeout=0.05), 5)
    assert cluster.settling                        # still on its way, but reads went on
    view.client.read_gate.set()
    await asyncio.wait_for(cluster.settled(), 5)
    assert cluster.name_in_use("web") is not None


async def test_a_lookup_by_full_id_waits_for_that_container_only():
    cluster = ClusterView(client_factory=lambda n: None)
    n1, n2 = add_node(cluster, "n1"), add_node(cluster, "n2")
    placement = Placement(cluster, Scheduler())
    n1.client.read_gate.clear()
    n2.client.read_gate.clear()
    first = await placement.create("aa", {"Image": "busybox", "Env": ["constraint:node==n1"]}, answer_first=True)
    await placement.create("bb", {"Image": "busybox", "Env": ["constraint:node==n2"]}, answer_first=True)
    n1.client.read_gate.set()                      # n2's engine still hangs on its read
    await asyncio.wait_for(cluster.settled_container(first.id), 1)   # not the 5 s cap of a wait for all
    assert cluster.find_container(first.id).name == "aa" and cluster.settling
    # a name (or anything but a full ID being stored) waits for every change, as reads do
    await asyncio.wait_for(cluster.settled_container("bb", timeout=0.05), 5)
    assert cluster.name_in_use("bb") is None
    n2.client.read_gate.set()
    await asyncio.wait_for(cluster.settled_container("bb"), 5)
    assert cluster.name_in_use("bb") is not None


async def test_a_pass_reads_every_node_only_when_a_node_back_holds_the_policy(monkeypatch):
    from swarmd.manager import rescheduler as module
    built = []
    real = module.node_state
    monkeypatch.setattr(module, "node_state", lambda view: built.append(view.id) or real(view))
    cluster = ClusterView(client_factory=lambda n: None)
    first, second = add_node(cluster, "n1"), add_node(cluster, "n2")
    placement = Placement(cluster, Scheduler())
    await placement.create("plain", {"Image": "busybox"})
    cluster.synced.set()
    rescheduler = Rescheduler(cluster, placement)
    await rescheduler.tick()                   # both nodes appeared, no container with the policy
    assert built == []
    await placement.create("db", {"Image": "busybox", "Labels": POLICY, "Env": ["constraint:node==n1"]})
    first.connected = False                    # unreachable, then back: n1 appears again
    first.changed()
    await rescheduler.tick()
    first.connected = True
    first.changed()
    await rescheduler.tick()                   # n1 holds "db": its name is looked for on every node
    assert sorted(built) == sorted([first.id, second.id])


class RemovalCutShort(InMemoryAgent):
    """An agent whose first remove fails with what is not an API error (a broken connection), or
    waits on `removing` until it is set; later removes drop the document."""

    def __init__(self, first: str):
        super().__init__()
        self.first = first                 # "raises" or "waits"
        self.removes = 0
        self.removing = asyncio.Event()
        self.asked = asyncio.Event()

    async def container_action(self, container_id: str, action: str, params=None) -> int:
        assert action == "remove"
        self.removes += 1
        self.asked.set()
        if self.removes == 1:
            if self.first == "raises":
                raise ConnectionResetError("the agent's connection broke")
            await self.removing.wait()
        self.docs.pop(container_id, None)
        return 204


async def _stale_and_kept(cluster: ClusterView, first: str) -> tuple[NodeView, str]:
    """n1 holds an older copy of "db" (its agent's first remove is cut short), n2 the newer."""
    stale_view = add_node(cluster, "n1")
    stale_view.client = RemovalCutShort(first)
    kept_view = add_node(cluster, "n2")
    for view, created in ((stale_view, "2024-01-01T00:00:00Z"), (kept_view, "2024-01-02T00:00:00Z")):
        cid = uuid.uuid4().hex * 2
        view.client.docs[cid] = {"Id": cid, "Name": "/db", "Created": created,
                                 "State": {"Status": "running", "Running": True},
                                 "Config": {"Image": "busybox", "Labels": POLICY}, "HostConfig": {}}
        await cluster.refresh_container(view, cid)
    cluster.synced.set()
    return stale_view, next(iter(stale_view.client.docs))


async def test_a_stale_copy_whose_removal_broke_off_is_removed_on_the_next_pass():
    cluster = ClusterView(client_factory=lambda n: None)
    stale_view, stale_id = await _stale_and_kept(cluster, "raises")
    rescheduler = Rescheduler(cluster, Placement(cluster, Scheduler()))
    with pytest.raises(ConnectionResetError):
        await rescheduler.tick()
    assert stale_id in stale_view.client.docs
    await rescheduler.tick()                   # no node changed since: the pass cut short is made again
    assert stale_view.client.removes == 2 and stale_id not in stale_view.client.docs
    assert stale_id not in stale_view.containers


async def test_a_primary_cancelled_while_removing_a_stale_copy_removes_it_in_its_next_term():
    cluster = ClusterView(client_factory=lambda n: None)
    stale_view, stale_id = await _stale_and_kept(cluster, "waits")
    rescheduler = Rescheduler(cluster, Placement(cluster, Scheduler()), interval=0.01)
    term = asyncio.create_task(rescheduler.run())
    await asyncio.wait_for(stale_view.client.asked.wait(), 5)
    term.cancel()                              # the role is lost mid-pass
    with pytest.raises(asyncio.CancelledError):
        await term
    assert stale_id in stale_view.client.docs
    term = asyncio.create_task(rescheduler.run())     # primary again, nothing changed meanwhile
    try:
        for _ in range(500):
            if stale_id not in stale_view.client.docs:
                break
            await asyncio.sleep(0.01)
    finally:
        term.cancel()
        await asyncio.gather(term, return_exceptions=True)
    assert stale_view.client.removes == 2 and stale_id not in stale_view.client.docs
