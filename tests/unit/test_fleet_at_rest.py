"""What an idle fleet costs: the manager's keepalive pings to its agents, the discovery daemon's
reads of the nodes its heartbeats name (once per lease) and its node-count sampling, each kept from
growing into a load of its own with the fleet."""
from __future__ import annotations

from swarmd.agent.daemon import SERVER_OPTIONS
from swarmd.discovery.leases import CheckedLeases
from swarmd.discovery.metrics import SAMPLE_KEYS_PER_SECOND, next_sample_in
from swarmd.manager.agent_channel import (AGENT_PING_INTERVAL_MS, AGENT_PING_TIMEOUT_MS, agent_channel_options,
                                          pings_per_second)


def test_the_manager_pings_each_agent_once_a_minute_with_time_for_a_busy_agent_to_answer():
    options = dict(agent_channel_options())
    assert options["grpc.keepalive_time_ms"] == AGENT_PING_INTERVAL_MS == 60_000
    assert options["grpc.keepalive_timeout_ms"] == AGENT_PING_TIMEOUT_MS
    assert 5_000 < AGENT_PING_TIMEOUT_MS < AGENT_PING_INTERVAL_MS
    assert options["grpc.max_receive_message_length"] == options["grpc.max_send_message_length"] == 256 << 20


def test_an_idle_fleet_of_5000_nodes_costs_the_manager_under_a_hundred_pings_a_second():
    assert pings_per_second(5000) < 100
    assert pings_per_second(5000, interval_ms=10_000) == 500     # what the 10 s pings cost


def test_the_agent_accepts_the_managers_pings_without_a_goaway():
    # an agent answers pings closer than its minimum with too_many_pings and a GOAWAY (every stream
    # cut); it must accept the manager's period, and not count strikes at all
    server = dict(SERVER_OPTIONS)
    assert server["grpc.http2.min_recv_ping_interval_without_data_ms"] <= AGENT_PING_INTERVAL_MS
    assert server["grpc.http2.max_ping_strikes"] == 0
    assert server["grpc.keepalive_permit_without_calls"] == 1


def test_small_fleets_are_sampled_at_the_given_interval():
    assert next_sample_in(0, 2.0) == 2.0                     # etcd did not answer: the interval
    assert next_sample_in(2 * 400 + 10, 2.0) == 2.0          # 400 nodes: their records and names
    assert next_sample_in(SAMPLE_KEYS_PER_SECOND * 2, 2.0) == 2.0


def test_large_fleets_are_sampled_at_a_bounded_read_rate():
    for nodes in (1000, 2000, 5000, 20_000):
        keys = 2 * nodes
        wait = next_sample_in(keys, 2.0)
        assert wait > 2.0
        assert keys / wait == SAMPLE_KEYS_PER_SECOND
    assert next_sample_in(10_000, 2.0) == 20.0                 # 5,000 nodes: a sample every 20 s
    assert next_sample_in(10_000, 30.0) == 30.0                # a longer interval is kept


def test_a_checked_pairing_is_renewed_alone_until_its_lease_changes_or_is_forgotten():
    checked = CheckedLeases()
    assert not checked.holds("c", "n1", 7)                    # never seen: read first
    checked.add("c", "n1", 7)
    assert checked.holds("c", "n1", 7)
    assert not checked.holds("c", "n1", 8)                    # another lease: read again
    assert not checked.holds("other", "n1", 7)                # the same ID in another cluster
    checked.add("c", "n1", 8)                                 # registered again
    assert checked.holds("c", "n1", 8) and not checked.holds("c", "n1", 7)
    checked.forget("c", "n1")                                 # lease gone, or deregistered
    assert not checked.holds("c", "n1", 8) and len(checked) == 0
    checked.forget("c", "never")                              # forgetting the unknown is harmless


def test_a_heartbeat_without_a_lease_is_never_taken_as_checked():
    checked = CheckedLeases()
    checked.add("c", "n1", 0)
    assert not checked.holds("c", "n1", 0)


def test_the_least_recently_renewed_pairings_go_first_past_the_limit():
    checked = CheckedLeases(limit=3)
    for i in range(3):
        checked.add("c", f"n{i}", i + 1)
    assert checked.holds("c", "n0", 1)                        # n0 renewed: n1 is now the oldest
    checked.add("c", "n3", 4)
    assert len(checked) == 3
    assert not checked.holds("c", "n1", 2)
    assert all(checked.holds("c", f"n{i}", i + 1) for i in (0, 2, 3))
