"""`swarm create`: ask the discovery daemon for a new cluster; print its token (last line)."""
from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

from swarmd.common.config import add_flag, address_list
from swarmd.common.tls import TLSConfig, add_tls_flags

TIMEOUT = 10.0


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


@dataclass(frozen=True)
class CreateConfig:
    discovery_addr: str
    tls: TLSConfig | None


def add_parser(sub) -> None:
    p = sub.add_parser("create", help="create a cluster and print its token")
    add_flag(p, "--discovery-addr", required=True, help="discovery daemon HOST:PORT")
    add_tls_flags(p)
    p.set_defaults(configure=configure, func=run)


def configure(args) -> CreateConfig:
    tls = TLSConfig.from_args(args)
    if tls is not None:
        tls.ca_digest()     # the token names the CA: a file that is no certificate is refused now
    return CreateConfig(address_list("--discovery-addr", args.discovery_addr), tls)


def run(cfg: CreateConfig) -> int:
    import grpc
    try:
        token = asyncio.run(create_cluster(cfg.discovery_addr, cfg.tls))
    except grpc.RpcError as err:
        print(f"swarm create: discovery at {cfg.discovery_addr}: "
              f"{err.details() or err.code().name.lower()}", file=sys.stderr)
        return 1
    print(token)
    return 0
