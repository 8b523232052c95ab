"""`swarm join`: run the agent for one Docker host and register it with the cluster (flags ->
agent.config.AgentConfig -> agent.daemon)."""
from __future__ import annotations

import os

from swarmd.common.config import ConfigError, add_flag, host_port, parse_duration
from swarmd.common.etcd_tls import add_etcd_tls_flags
from swarmd.common.tls import add_tls_flags


def add_parser(sub) -> None:
    p = sub.add_parser("join", help="run the agent for one Docker host and join it to a cluster")
    add_flag(p, "--advertise", "--addr", default=None,
             help="HOST:PORT the manager reaches this agent's gRPC service on")
    add_flag(p, "--listen", default=None, help="HOST:PORT to serve gRPC on (default: --advertise)")
    add_flag(p, "--engine", default="unix:///var/run/docker.sock",
             help="the local Docker engine: unix:///path or tcp://HOST:PORT")
    add_flag(p, "--name", default=None, help="node name (default: the engine's hostname)")
    add_flag(p, "--label", action="append", default=None,
             help="node label KEY=VALUE, added to the engine's labels (repeatable)")
    add_flag(p, "--heartbeat", type=parse_duration, default=parse_duration("2s"),
             help="period between registration heartbeats")
    add_flag(p, "--ttl", type=parse_duration, default=parse_duration("6s"),
             help="how long the registration lives without a heartbeat")
    add_flag(p, "--engine-check", type=parse_duration, default=parse_duration("3s"),
             help="period between engine pings (drives the gRPC health status)")
    add_flag(p, "--state-dir", default="/var/lib/swarmd/agent", help="where the node id is kept")
    add_flag(p, "--host-ip", default=None,
             help="address published ports are reachable on (default: the host of --advertise)")
    add_flag(p, "--discovery-addr", default=None, help="discovery daemon HOST:PORT (for token://)")
    add_flag(p, "--metrics-addr", default=None, help="HOST:PORT to serve Prometheus metrics on (/metrics)")
    add_tls_flags(p)
    add_etcd_tls_flags(p, "etcd:// discovery URLs")
    p.add_argument("discovery_url", nargs="?", default=None,
                   help="token://TOKEN, etcd://HOST:PORT/PREFIX, nodes://… or file:///path [env SWARM_DISCOVERY]")

    p.set_defaults(configure=configure, func=run)


def discovery_url(args, verb: str) -> str:
    """The positional discovery URL, or SWARM_DISCOVERY as in classic swarm (cli/flags.go); missing,
    classic's words (cli/join.go, cli/list.go)."""
    url = args.discovery_url or os.environ.get("SWARM_DISCOVERY", "")
    if not url:
        raise ConfigError(f"discovery required to {verb} a cluster. See 'swarm {verb.split()[0]} --help'.")
    return url


def check_advertise(value: str | None) -> None:
    """Classic's words (cli/join.go) for a missing or malformed --advertise."""
    if not value:
        raise ConfigError("missing mandatory --advertise flag")
    try:
        host_port("--advertise", value)
    except ConfigError as exc:
        raise ConfigError(f"--advertise should be of the form ip:port or hostname:port ({exc})") from None


def configure(args):
    from swarmd.agent.config import AgentConfig
    args.discovery_url = discovery_url(args, "join")
    check_advertise(args.advertise)
    return AgentConfig.from_args(args)


def run(cfg) -> int:
    from swarmd.agent.daemon import main
    return main(cfg)
