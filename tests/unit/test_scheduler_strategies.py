"""Strategies: spread, binpack and random rank the candidates; all check that the container fits."""
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmd.manager.scheduler import ContainerSpec, NoSuitableNode
from swarmd.manager.scheduler.strategies import fits, weight
from swarmd.manager.scheduler.strategies.binpack import BinpackStrategy
from swarmd.manager.scheduler.strategies.random_strategy import RandomStrategy
from swarmd.manager.scheduler.strategies.spread import SpreadStrategy
from tests.unit.test_scheduler_snapshot import GiB, ctr, node

PLAIN = ContainerSpec(name=None, image="busybox")


def asks(cpus=0.0, memory=0):
    return ContainerSpec(name=None, image="busybox", cpus=cpus, memory=memory)


def names(nodes):
    return [n.name for n in nodes]


def test_spread_prefers_fewest_containers_then_name():
    nodes = [node("c", n_containers=2), node("b", n_containers=1), node("a", n_containers=1), node("d", n_containers=5)]
    assert names(SpreadStrategy().rank(PLAIN, nodes)) == ["a", "b", "c", "d"]
    assert SpreadStrategy().pick(PLAIN, nodes).name == "a"


def test_spread_tie_on_count_goes_to_the_less_reserved_node():
    nodes = [node("a", containers=[ctr("x", cpus=2.0)]), node("b", containers=[ctr("y", cpus=0.5)])]
    assert SpreadStrategy().pick(PLAIN, nodes).name == "b"


def test_spread_with_requests_weighs_resources_before_counts():
    # "a" has fewer containers but more of its memory is reserved
    nodes = [node("a", memory=4 * GiB, containers=[ctr("x", memory=3 * GiB)]), node("b", memory=4 * GiB, n_containers=5)]
    assert SpreadStrategy().pick(asks(memory=GiB // 2), nodes).name == "b"
    assert SpreadStrategy().pick(PLAIN, nodes).name == "a"


def test_three_plain_runs_land_on_three_nodes():
    nodes = [node("node1"), node("node2"), node("node3")]
    seen = []
    for i in range(3):
        chosen = SpreadStrategy().pick(PLAIN, nodes)
        seen.append(chosen.name)
        nodes = [node(n.name, containers=n.containers + ((ctr(f"run{i}"),) if n is chosen else ()))
                 for n in nodes]
    assert sorted(seen) == ["node1", "node2", "node3"]


def test_binpack_prefers_the_fullest_node_that_fits():
    nodes = [node("a", cpus=4, containers=[ctr("x", cpus=3.0)]), node("b", cpus=4, containers=[ctr("y", cpus=1.0)]),
             node("c", cpus=4)]
    assert BinpackStrategy().pick(asks(cpus=1.0), nodes).name == "a"
    assert BinpackStrategy().pick(asks(cpus=2.0), nodes).name == "b"      # "a" is too full
    assert names(BinpackStrategy().rank(asks(cpus=1.0), nodes)) == ["a", "b", "c"]


def test_binpack_without_requests_prefers_most_containers():
    nodes = [node("a", n_containers=1), node("b", n_containers=3), node("c", n_containers=3)]
    assert names(BinpackStrategy().rank(PLAIN, nodes)) == ["b", "c", "a"]


def test_fit_checks_memory_and_cpus_against_reservations():
    n = node("a", cpus=2, memory=2 * GiB, containers=[ctr("x", cpus=1.0, memory=GiB, state="exited")])
    assert fits(asks(cpus=1.0, memory=GiB), n)
    assert not fits(asks(cpus=1.5), n)
    assert not fits(asks(memory=GiB + 1), n)
    assert fits(PLAIN, node("tiny", cpus=0, memory=0))
    assert not fits(asks(cpus=0.1), node("unknown", cpus=0))
    assert weight(asks(cpus=1.0, memory=GiB), n) == pytest.approx(200.0)
    assert weight(PLAIN, n) == 200.0


@pytest.mark.parametrize("strategy", [SpreadStrategy(), BinpackStrategy(), RandomStrategy(random.Random(1))])
def test_no_node_has_room(strategy):
    nodes = [node("a", cpus=2, memory=GiB, containers=[ctr("x", cpus=1.5)]), node("b", cpus=1, memory=2 * GiB)]
    with pytest.raises(NoSuitableNode) as err:
        strategy.pick(asks(cpus=2.0, memory=512 << 20), nodes)
    assert str(err.value) == ("no resources available to schedule container: it requests 2 CPUs and 512 MiB of memory; "
                              "the most free on any candidate node is 1 CPUs and 2 GiB of memory")
    assert err.value.filter == "resources"


def test_random_is_seedable_and_only_picks_fitting_nodes():
    nodes = [node(f"n{i}", cpus=1 if i % 2 else 8) for i in range(10)]
    first, second = RandomStrategy(random.Random(7)), RandomStrategy(random.Random(7))
    a = [first.pick(PLAIN, nodes).name for _ in range(20)]
    b = [second.pick(PLAIN, nodes).name for _ in range(20)]
    assert a == b and len(set(a)) > 1
    rs = RandomStrategy(random.Random(3))
    picked = {rs.pick(asks(cpus=2.0), nodes).name for _ in range(200)}
    assert picked == {f"n{i}" for i in range(0, 10, 2)}
    assert sorted(names(rs.rank(PLAIN, nodes))) == sorted(names(nodes))


# -- properties -----------------------------------------------------------------------------------

counts = st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(counts)
def test_spread_never_picks_a_node_with_more_containers_when_nothing_is_reserved(cs):
    nodes = [node(f"n{i}", n_containers=c) for i, c in enumerate(cs)]
    assert SpreadStrategy().pick(PLAIN, nodes).index.count == min(cs)


@settings(max_examples=60, deadline=None)
@given(counts)
def test_binpack_never_picks_a_node_with_fewer_containers_when_nothing_is_reserved(cs):
    nodes = [node(f"n{i}", n_containers=c) for i, c in enumerate(cs)]
    assert BinpackStrategy().pick(PLAIN, nodes).index.count == max(cs)


nodes_with_load = st.lists(
    st.tuples(st.sampled_from([1.0, 2.0, 4.0]), st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), max_size=5)),
    min_size=1, max_size=6)


@settings(max_examples=80, deadline=None)
@given(nodes_with_load, st.sampled_from([0.25, 0.5, 1.0, 2.0]))
def test_every_strategy_picks_a_fitting_node_or_says_none_fits(specs, request):
    nodes = [node(f"n{i}", cpus=total, containers=[ctr(f"c{i}-{j}", cpus=c) for j, c in enumerate(used)])
             for i, (total, used) in enumerate(specs)]
    s = asks(cpus=request)
    any_fits = any(n.reserved_cpus + request <= n.total_cpus for n in nodes)
    for strategy in (SpreadStrategy(), BinpackStrategy(), RandomStrategy(random.Random(0))):
        if any_fits:
            chosen = strategy.pick(s, nodes)
            assert chosen.reserved_cpus + request <= chosen.total_cpus
        else:
            with pytest.raises(NoSuitableNode, match="no resources available"):
                strategy.pick(s, nodes)


@settings(max_examples=60, deadline=None)
@given(nodes_with_load, st.sampled_from([0.25, 0.5, 1.0]))
def test_spread_and_binpack_pick_opposite_ends_of_the_load(specs, request):
    nodes = [node(f"n{i}", cpus=total, containers=[ctr(f"c{i}-{j}", cpus=c) for j, c in enumerate(used)])
             for i, (total, used) in enumerate(specs)]
    s = asks(cpus=request)
    fitting = [n for n in nodes if n.reserved_cpus + request <= n.total_cpus]
    if not fitting:
        return
    usage = {n.name: (n.reserved_cpus + request) / n.total_cpus for n in fitting}
    assert usage[SpreadStrategy().pick(s, nodes).name] == pytest.approx(min(usage.values()))
    assert usage[BinpackStrategy().pick(s, nodes).name] == pytest.approx(max(usage.values()))
