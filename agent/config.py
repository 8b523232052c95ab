"""`swarm join`'s configuration: every flag checked once, before anything starts.

`AgentConfig.from_args` raises ConfigError (printed by swarmd.cli as `swarm join: error: …`,
exit 2) for any value that cannot work, including a state directory the node id cannot be kept
in; the daemon (agent.daemon) takes only the result.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from swarmd.agent import identity
from swarmd.agent.engine import EngineAddress
from swarmd.agent.node_info import NodeSettings, parse_labels
from swarmd.common.cluster_access import ClusterAccess
from swarmd.common.config import ConfigError, host_port, positive


def host_of(addr: str, flag: str = "--advertise") -> str:
    """'10.0.0.5:4100' -> '10.0.0.5'; '[::1]:4100' -> '::1'."""
    return host_port(flag, addr)[0]


@dataclass(frozen=True)
class AgentConfig:
    node_id: str
    listen: str
    advertise: str
    engine_url: str
    name: str                           # "" means the engine's hostname
    labels: dict[str, str] = field(hash=False)
    host_ip: str
    heartbeat: float
    ttl: float
    engine_check: float
    state_dir: str
    metrics_addr: str | None
    cluster: ClusterAccess
    env_file: str | None

    @property
    def settings(self) -> NodeSettings:
        return NodeSettings(node_id=self.node_id, addr=self.advertise, host_ip=self.host_ip,
                            name=self.name, labels=dict(self.labels))

    @classmethod
    def from_args(cls, args) -> "AgentConfig":
        advertise = args.advertise
        if not advertise:
            raise ConfigError("--advertise HOST:PORT is required")
        advertise_host = host_of(advertise)
        listen = args.listen or advertise
        host_port("--listen", listen, listen=True)
        heartbeat = positive("--heartbeat", args.heartbeat)
        ttl = positive("--ttl", args.ttl)
        if ttl <= heartbeat:
            raise ConfigError(f"--ttl ({ttl}s) must be longer than --heartbeat ({heartbeat}s)")
        engine_check = positive("--engine-check", args.engine_check)
        if args.metrics_addr:
            host_port("--metrics-addr", args.metrics_addr, listen=True)
        try:
            labels = parse_labels(args.label)
            EngineAddress.parse(args.engine)
        except ValueError as exc:
            raise ConfigError(f"{exc}") from None
        cluster = ClusterAccess.from_args(args, reads_members=False)
        if cluster.tls is not None:
            cluster.tls.grpc_server_credentials()      # a node serves gRPC: it needs its key pair
        try:
            node_id = identity.load_or_create(args.state_dir)
        except identity.IdentityError as exc:
            raise ConfigError(f"--state-dir: {exc}") from None
        return cls(node_id=node_id, listen=listen, advertise=advertise, engine_url=args.engine,
                   name=args.name or "", labels=labels, host_ip=args.host_ip or advertise_host,
                   heartbeat=heartbeat, ttl=ttl, engine_check=engine_check,
                   state_dir=args.state_dir, metrics_addr=args.metrics_addr or None, cluster=cluster,
                   env_file=getattr(args, "env_file", None))
