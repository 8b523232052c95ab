"""`swarm create`: ask the discovery daemon for a new cluster; print its token (last line).

With `--ca-dir D` (the discovery daemon runs `--ca-dir D`: bootstrap mode), holding the CA is the
administrator's credential: a short-lived admin certificate is signed here from D, and the call
goes over mutual TLS. The agent join token comes on the last line; `--role manager` prints a
manager join token instead; `--cluster ID|TOKEN` adds a token to an existing cluster rather than
creating one (the cluster ID is printed on the first line, and any of its join tokens names it too).
"""
from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

from swarmd.common.config import ConfigError, add_flag, address_list
from swarmd.common.tls import TLSConfig, add_tls_flags

TIMEOUT = 10.0
ROLES = {"worker": "swarm-worker", "agent": "swarm-worker", "manager": "swarm-manager"}


async def create_cluster(addr: str, tls=None) -> str:
    """A new cluster's token; with TLS (the discovery verified against --tlscacert), the token
    also carries that CA's digest so joining daemons can check they trust the same CA."""
    from swarmd.proto.swarm.v1 import discovery_pb2, discovery_pb2_grpc
    from swarmd.common.membership.urls import join_token
    from swarmd.common.tls import open_channel
    async with open_channel(addr, tls) as channel:
        reply = await discovery_pb2_grpc.DiscoveryStub(channel).CreateCluster(
            discovery_pb2.CreateClusterRequest(), timeout=TIMEOUT)
    digest = tls.ca_digest() if tls is not None else None
    return join_token(digest, reply.token) if digest else reply.token


async def bootstrap_token(addr: str, tls: TLSConfig, role: str, cluster: str = "",
                          rotate: bool = False) -> tuple[str, str]:
    """(cluster ID, join token) from a discovery daemon in bootstrap mode: a new cluster's agent
    token, or a new token of `role` for `cluster` (the earlier ones retired with `rotate`)."""
    from swarmd.proto.swarm.v1 import discovery_pb2, discovery_pb2_grpc
    from swarmd.common.tls import open_channel
    async with open_channel(addr, tls) as channel:
        stub = discovery_pb2_grpc.DiscoveryStub(channel)
        if not cluster:
            reply = await stub.CreateCluster(discovery_pb2.CreateClusterRequest(), timeout=TIMEOUT)
            if role == ROLES["worker"]:
                return reply.cluster_id, reply.token
            cluster = reply.cluster_id
        reply = await stub.CreateToken(discovery_pb2.CreateTokenRequest(cluster=cluster, role=role, rotate=rotate),
                                       timeout=TIMEOUT)
        return reply.cluster_id, reply.token


@dataclass(frozen=True)
class CreateConfig:
    discovery_addr: str
    tls: TLSConfig | None
    ca_dir: str | None = None
    role: str = ROLES["worker"]
    cluster: str = ""


def add_parser(sub) -> None:
    p = sub.add_parser("create", help="create a cluster and print its token")
    add_flag(p, "--discovery-addr", required=True, help="discovery daemon HOST:PORT")
    add_bootstrap_flags(p, "print a manager join token (default: an agent token)")
    add_tls_flags(p)
    p.set_defaults(configure=configure, func=run)


def add_bootstrap_flags(p, role_help: str) -> None:
    add_flag(p, "--ca-dir", default=None,
             help="the CA directory the discovery daemon runs --ca-dir with: its holder may create join tokens")
    add_flag(p, "--role", default="worker", choices=sorted(ROLES), help=role_help)
    add_flag(p, "--cluster", default="", help="the cluster (its ID or one of its join tokens) to make a token for")


def check_bootstrap(args) -> tuple[str | None, str, str]:
    """(CA dir, role, cluster) of the bootstrap flags; they need --ca-dir and exclude the TLS flags."""
    ca_dir = getattr(args, "ca_dir", None) or None
    role = ROLES[args.role]
    cluster = (args.cluster or "").strip()
    if ca_dir is None:
        if role != ROLES["worker"] or cluster:
            raise ConfigError("--role and --cluster make join tokens of a certificate-issuing discovery daemon: "
                              "give --ca-dir")
        return None, role, cluster
    if args.tls or args.tlsverify or args.tlscert or args.tlscacert:
        raise ConfigError("--ca-dir is the credential: leave out the --tls flags")
    from swarmd.common import pki
    try:
        pki.read_ca(ca_dir)
    except pki.PKIError as exc:
        raise ConfigError(f"--ca-dir: {exc}") from None
    return ca_dir, role, cluster


def configure(args) -> CreateConfig:
    ca_dir, role, cluster = check_bootstrap(args)
    tls = TLSConfig.from_args(args)
    if tls is not None:
        tls.ca_digest()     # the token names the CA: a file that is no certificate is refused now
    return CreateConfig(address_list("--discovery-addr", args.discovery_addr), tls, ca_dir, role, cluster)


def run(cfg: CreateConfig) -> int:
    import grpc
    try:
        if cfg.ca_dir is not None:
            from swarmd.common.node_certs import admin_tls
            cluster, token = asyncio.run(bootstrap_token(cfg.discovery_addr, admin_tls(cfg.ca_dir), cfg.role,
                                                         cfg.cluster))
            print(f"cluster {cluster}")
        else:
            token = asyncio.run(create_cluster(cfg.discovery_addr, cfg.tls))
    except grpc.RpcError as err:
        print(f"swarm create: discovery at {cfg.discovery_addr}: "
              f"{err.details() or err.code().name.lower()}", file=sys.stderr)
        return 1
    print(token)
    return 0
