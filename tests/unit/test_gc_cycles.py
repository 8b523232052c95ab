"""The manager freezes its long-lived objects and never walks them again (manager/gc_policy.py):
that is only sound if none of them ends in a garbage reference cycle, which nothing would free.

These churn a real `ClusterView` over in-memory hollow engines (the `scale` suite's engine, read
through the same documents the agents relay) with every object alive frozen after each step, the
worst case (anything may be alive when a full collection runs), and then hand the frozen objects
back and collect them with `gc.DEBUG_SAVEALL`: whatever the collector finds is a cycle the
manager would have kept forever.
"""
from __future__ import annotations

import asyncio
import collections
import gc
import socket

from bench.memory import InProcessAgent, hollow_engines, node_of
from swarmd.manager.api.context import ManagerContext
from swarmd.manager.api import build_router
from swarmd.manager.cluster import ClusterView
from swarmd.manager.gc_policy import KEEP_EVERY, GcPolicy, keep_long_lived
from swarmd.manager.httpd.server import HttpServer
from swarmd.manager.scheduler import Scheduler
from tests.unit.view_helpers import joined, until

NODES, PER_NODE = 6, 4


class Cycle:
    def __init__(self):
        self.me = self


def _freeze_all() -> None:
    """What a full collection under the policy does at any moment: every object alive frozen."""
    gc.collect()
    gc.freeze()


async def _containers_come_and_go(cluster: ClusterView, engine, nid: str, tag: str) -> None:
    c = engine.add_container(f"churn-{tag}", {"Image": "busybox", "Labels": {"app": tag}}, running=True)
    await until(lambda: c.id in cluster.nodes[nid].containers)
    _freeze_all()
    await engine.container_action(c.id, "kill", {})
    await until(lambda: cluster.nodes[nid].containers[c.id].state.get("Status") == "exited")
    _freeze_all()
    await engine.container_action(c.id, "remove", {})
    await until(lambda: c.id not in cluster.nodes[nid].containers)


async def _node_lost_and_back(cluster: ClusterView, engines: dict, nid: str, index: int) -> None:
    view = cluster.nodes[nid]
    task = view.task
    cluster.node_left(nid, "lease expired")
    await until(task.done)
    _freeze_all()
    cluster.node_joined(node_of(nid, engines[nid], index))
    await until(lambda: view.connected)


async def _node_moved_then_removed(cluster: ClusterView, engines: dict, nid: str, index: int) -> None:
    old = cluster.nodes[nid]
    cluster.node_joined(node_of(nid, engines[nid], index + 100))        # same ID, a new address
    await until(lambda: cluster.nodes[nid] is not old and cluster.nodes[nid].connected)
    _freeze_all()
    cluster.remove_node(nid)
    await asyncio.sleep(0.01)


async def _churn(rounds: int, extra=None, policy: GcPolicy | None = None) -> list:
    """Runs the churn under the manager's policy; returns what the collector then finds garbage."""
    engines = hollow_engines(NODES, PER_NODE)
    policy = policy or GcPolicy()
    policy.install()
    try:
        cluster = ClusterView(client_factory=lambda node: InProcessAgent(engines[node.info.id]))
        ids = await joined(cluster, engines)
        _freeze_all()
        for r in range(rounds):
            for i, nid in enumerate(ids[:2]):
                await _containers_come_and_go(cluster, engines[nid], nid, f"{r}-{i}")
            await _node_lost_and_back(cluster, engines, ids[2 + r % 2], 2 + r % 2)
            if extra is not None:
                extra()
            gc.collect()
        await _node_moved_then_removed(cluster, engines, ids[-1], len(ids) - 1)
        _freeze_all()
        return _garbage_among_frozen()
    finally:
        policy.uninstall()
        gc.unfreeze()


class Client:
    """A plain blocking socket, driven from a thread: the client's own objects hold no cycles, so
    what the check finds is the server's."""

    def __init__(self, addr: str):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buf = b""

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buf += chunk
        head, _, self.buf = self.buf.partition(marker)
        return head

    def get(self, path: str, body: bool = True) -> bytes:
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: swarm\r\n\r\n".encode())
        head = self.until(b"\r\n\r\n")
        if not body:
            return b""
        length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        while len(self.buf) < length:
            self.buf += self.sock.recv(65536)
        data, self.buf = self.buf[:length], self.buf[length:]
        return data


async def _api_churn(rounds: int) -> list:
    """Docker API calls through the manager's HTTP server, with everything alive frozen while
    connections are open (a full collection during a long `docker ps -a`): keep-alive connections
    that end, an event stream the client leaves, an error answered."""
    engines = hollow_engines(NODES, PER_NODE)
    policy = GcPolicy()
    policy.install()
    cluster = ClusterView(client_factory=lambda node: InProcessAgent(engines[node.info.id]))
    server = HttpServer(build_router(ManagerContext(cluster, Scheduler("spread"))), api_version="1.41",
                        min_api_version="1.12", server_header="Docker/1.41 swarmd")
    try:
        await joined(cluster, engines)
        await server.start(["tcp://127.0.0.1:0"])
        addr = server.addresses[0]
        _freeze_all()
        for _ in range(rounds):
            client = await asyncio.to_thread(Client, addr)
            listed = await asyncio.to_thread(client.get, "/v1.41/containers/json?all=1")
            _freeze_all()
            cid = listed.split(b'"Id":"', 1)[1][:64].decode()
            for path in (f"/v1.41/containers/{cid}/json", "/v1.41/info", "/v1.41/containers/nope/json"):
                await asyncio.to_thread(client.get, path)
            client.sock.close()
            events = await asyncio.to_thread(Client, addr)
            await asyncio.to_thread(events.get, "/v1.41/events", False)
            _freeze_all()
            events.sock.close()
            await asyncio.sleep(0.1)          # the server sees both connections end
            gc.collect()
        return _garbage_among_frozen()
    finally:
        await server.close()
        await cluster.close()
        policy.uninstall()
        gc.unfreeze()


def _garbage_among_frozen() -> list:
    gc.unfreeze()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return found


def _assert_no_cycles(garbage: list) -> None:
    kinds = collections.Counter(type(o).__name__ for o in garbage)
    assert not garbage, f"cycles the frozen objects would keep forever: {kinds.most_common(10)}"


def _clean_slate() -> None:
    gc.unfreeze()
    gc.collect()


def test_churning_the_view_leaves_no_cycle_among_frozen_objects():
    _clean_slate()
    garbage = asyncio.run(_churn(rounds=3))
    _assert_no_cycles(garbage)


def test_churning_the_view_with_the_old_generation_frozen_often_leaves_no_cycle_among_frozen_objects():
    """The old-generation freeze after middle collections (OLD_MAX), made to happen all through
    the churn, freezes no cycle either."""
    _clean_slate()
    policy = GcPolicy(old_max=1)                 # after every middle collection
    garbage = asyncio.run(_churn(rounds=3, policy=policy))
    assert policy.old_freezes > 0
    _assert_no_cycles(garbage)


def test_api_calls_through_the_http_server_leave_no_cycle_among_frozen_objects():
    _clean_slate()
    garbage = asyncio.run(_api_churn(rounds=3))
    _assert_no_cycles(garbage)


def test_a_cycle_that_dies_after_it_was_frozen_is_found_by_the_check():
    # the same check, with a long-lived object that ends in a cycle: it must be seen
    kept = []

    def a_cycle_dies():
        if kept:
            kept.pop()          # frozen by the steps since: only a thaw would free it now
        kept.append(Cycle())

    _clean_slate()
    garbage = asyncio.run(_churn(rounds=2, extra=a_cycle_dies))
    assert sum(type(o) is Cycle for o in garbage) == 1


def test_keep_long_lived_frees_a_cycle_that_is_already_garbage_instead_of_freezing_it():
    _clean_slate()
    try:
        Cycle()                      # garbage at once, but only the collector can free it
        keep_long_lived()
        assert _garbage_among_frozen() == []
    finally:
        gc.unfreeze()


def test_under_the_policy_keep_long_lived_freezes_at_most_every_keep_every_seconds():
    now = [100.0]
    policy = GcPolicy(clock=lambda: now[0])
    gc.unfreeze()
    policy.install()
    gc.disable()                                # only this test's collections
    try:
        keep_long_lived()
        frozen = gc.get_freeze_count()
        kept = [[i] for i in range(1000)]
        now[0] += KEEP_EVERY / 2
        keep_long_lived()                       # too soon after the last freeze: left to the next
        assert gc.get_freeze_count() == frozen
        now[0] += KEEP_EVERY
        keep_long_lived()
        assert gc.get_freeze_count() >= frozen + len(kept)
    finally:
        gc.enable()
        policy.uninstall()
        gc.unfreeze()


def test_the_default_policy_never_hands_the_frozen_objects_back():
    now = [0.0]
    policy = GcPolicy(clock=lambda: now[0])
    gc.unfreeze()
    policy.install()
    try:
        kept = [[i] for i in range(1000)]
        for _ in range(3):
            now[0] += 7 * 24 * 3600.0          # a week per full collection
            gc.collect()
        assert policy.thaws == 0 and policy.freezes == 3
        assert gc.get_freeze_count() >= len(kept)
    finally:
        policy.uninstall()
        gc.unfreeze()
