"""What an idle fleet costs: the manager's keepalive pings to its agents and the discovery daemon's
node-count sampling, each paced so that it does not grow into a load of its own with the fleet."""
from __future__ import annotations

from swarmd.agent.daemon import SERVER_OPTIONS
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
