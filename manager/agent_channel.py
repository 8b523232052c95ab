"""The options of the manager's gRPC channel to each agent, keepalive first.

Whether a node is alive is the lease's business: an agent that dies, hangs or loses its host stops
heartbeating, its lease runs out (three heartbeats) and the membership watch drops the node, which
closes its channel. A killed agent's connection is moreover reset by its kernel at once. What the
lease cannot see is a connection that died while its agent lives and keeps heartbeating (a
partition between the manager and that agent only, a NAT or firewall dropping an idle flow): the
node's event stream would then stay silent for good. gRPC keepalive pings catch that case alone, so
they need not come every few seconds: every AGENT_PING_INTERVAL_MS (a minute, the longest interval
at which classic swarm re-read each engine, its cli/flags.go `--engine-refresh-max-interval`),
a ping costing the manager and the agent a wake-up each, which at 10 s was 500 a second over
5,000 nodes of an idle fleet.
"""
from __future__ import annotations

MAX_MESSAGE = 256 << 20
AGENT_PING_INTERVAL_MS = 60_000
# an answer to a ping (and, through TCP_USER_TIMEOUT, to any data sent) later than this ends the
# connection: long enough for a busy agent's poller, short against the ping interval
AGENT_PING_TIMEOUT_MS = 20_000


def agent_channel_options() -> list[tuple[str, int]]:
    """The channel options of an AgentClient."""
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.keepalive_time_ms", AGENT_PING_INTERVAL_MS),
        ("grpc.keepalive_timeout_ms", AGENT_PING_TIMEOUT_MS),
    ]


def pings_per_second(nodes: int, interval_ms: int = AGENT_PING_INTERVAL_MS) -> float:
    """The keepalive pings an idle fleet of `nodes` costs the manager each second."""
    return nodes * 1000 / interval_ms
