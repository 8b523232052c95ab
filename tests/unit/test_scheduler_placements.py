"""Remembered placements: a scheduler reused over a changing cluster chooses exactly what the
filters in order and the strategy choose on that cluster from scratch."""
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmd.manager.scheduler import ContainerSpec, NoSuitableNode, Scheduler
from swarmd.manager.scheduler.placements import Placements
from swarmd.manager.scheduler.snapshot import PortBinding, serials
from tests.unit.test_scheduler_snapshot import GiB, ctr, node


def spec(env=(), hc=None):
    return ContainerSpec.from_create({"Image": "busybox", "Env": list(env), "HostConfig": hc or {}}, None)


def from_scratch(scheduler: Scheduler, s: ContainerSpec, nodes):
    """The decision without remembered verdicts: filters in order, then the strategy's pick."""
    fresh = Scheduler(scheduler.strategy_name, scheduler.filter_names)
    return fresh._strategy.pick(s, fresh.candidates(s, nodes))


def with_container(n, c):
    return dataclasses.replace(n, containers=n.containers + (c,))


SPECS = [
    spec(),
    spec(["constraint:zone==z1"]),
    spec(["constraint:zone!=z1", "affinity:app==web"]),
    spec(hc={"Memory": 2 * GiB, "NanoCpus": 1_500_000_000}),
    spec(["constraint:node==n*"], {"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}),
    spec(["affinity:container!=db"], {"NanoCpus": 500_000_000}),
]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["spread", "binpack"]),
       st.lists(st.tuples(st.integers(0, 5), st.integers(0, 7), st.sampled_from(["add", "replace", "unhealthy",
                                                                                 "healthy"])),
                min_size=1, max_size=25))
def test_a_reused_scheduler_decides_as_from_scratch(strategy, steps):
    nodes = [node(f"n{i}", labels={"zone": f"z{i % 3}", "containerslots": "6"} if i % 4 == 0 else {"zone": f"z{i % 3}"},
                  cpus=4.0, memory=8 * GiB, n_containers=i % 3) for i in range(8)]
    scheduler = Scheduler(strategy)
    for k, (which, where, change) in enumerate(steps):
        s = SPECS[which]
        try:
            expected = from_scratch(scheduler, s, nodes)
        except NoSuitableNode as exc:
            with pytest.raises(NoSuitableNode) as err:
                scheduler.select(s, nodes)
            assert str(err.value) == str(exc)
        else:
            assert scheduler.select(s, nodes) is expected
        # the cluster moves on: a container lands, a node is re-read, a node fails or returns
        n = nodes[where]
        if change == "add":
            nodes[where] = with_container(n, ctr("db" if k % 5 == 0 else f"x{k}", id=f"{k:064x}",
                                                 labels={"app": "web"} if k % 2 else {},
                                                 ports=[PortBinding("0.0.0.0", 8080, "tcp")] if k % 3 == 0 else [],
                                                 cpus=1.0 if k % 2 else 0.0, memory=GiB))
        elif change == "replace":
            nodes[where] = dataclasses.replace(n)
        else:
            nodes[where] = dataclasses.replace(n, healthy=change == "healthy")


def test_only_the_changed_nodes_are_judged_again():
    nodes = [node(f"n{i}", n_containers=i % 4) for i in range(50)]
    placements = Placements()
    judged = []

    def judge(n):
        judged.append(n.name)
        return n.index.count, n.name

    p = placements.get("sig", lambda: judge)
    assert nodes[p.best(nodes)].name == "n0"
    assert len(judged) == 50
    judged.clear()
    assert nodes[p.best(list(nodes))].name == "n0"
    assert judged == []
    nodes[0] = with_container(nodes[0], ctr("x"))
    nodes[4] = dataclasses.replace(nodes[4], healthy=False)
    assert nodes[p.best(nodes)].name == "n12"     # n0 holds one now; of the empty ones "n12" sorts first
    assert judged == ["n0", "n4"]


def test_a_rejected_node_leaves_the_choice_and_comes_back():
    nodes = [node("a"), node("b", n_containers=1)]
    scheduler = Scheduler()
    assert scheduler.select(spec(), nodes).name == "a"
    nodes[0] = dataclasses.replace(nodes[0], healthy=False)
    assert scheduler.select(spec(), nodes).name == "b"
    nodes[1] = dataclasses.replace(nodes[1], healthy=False)
    with pytest.raises(NoSuitableNode, match="^no healthy node available in the cluster$"):
        scheduler.select(spec(), nodes)
    nodes[0] = dataclasses.replace(nodes[0], healthy=True)
    assert scheduler.select(spec(), nodes).name == "a"


def test_a_port_taken_by_a_placement_moves_the_next_one():
    s = spec(hc={"PortBindings": {"80/tcp": [{"HostPort": "80"}]}})
    nodes = [node("a"), node("b"), node("c")]
    scheduler = Scheduler()
    for expected in ("a", "b", "c"):
        chosen = scheduler.select(s, nodes)
        assert chosen.name == expected
        i = nodes.index(chosen)
        nodes[i] = with_container(chosen, ctr(f"web-{expected}", state="created",
                                              ports=[PortBinding("0.0.0.0", 80, "tcp")]))
    with pytest.raises(NoSuitableNode, match=r"port 80 \(Bridge mode\)"):
        scheduler.select(s, nodes)


def test_nodes_joining_rebuild_the_verdicts():
    nodes = [node("b", n_containers=1)]
    scheduler = Scheduler()
    assert scheduler.select(spec(), nodes).name == "b"
    assert scheduler.select(spec(), nodes + [node("a")]).name == "a"
    assert scheduler.select(spec(), [node("c", n_containers=2)] + nodes).name == "b"


def test_serials_identify_snapshot_objects():
    a, b = node("a"), node("b")
    assert serials([a, b, a]) == [a.serial, b.serial, a.serial]
    assert a.serial != b.serial
    assert dataclasses.replace(a).serial not in (a.serial, b.serial)


def test_least_recently_used_signatures_are_dropped():
    placements = Placements(capacity=2)
    first = placements.get(1, lambda: (lambda n: None))
    placements.get(2, lambda: (lambda n: None))
    assert placements.get(1, lambda: (lambda n: None)) is first   # 1 is now the most recent
    placements.get(3, lambda: (lambda n: None))                   # drops 2
    assert len(placements) == 2
    assert placements.get(1, lambda: (lambda n: None)) is first
    assert placements.get(2, lambda: (lambda n: None)) is not None and len(placements) == 2
