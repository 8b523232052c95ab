"""`swarm create`: ask the discovery daemon for a new cluster; print its token (last line)."""
from __future__ import annotations

import asyncio
import sys

from swarmd.config import add_flag
from swarmd.tls import add_tls_flags

TIMEOUT = 10.0


async def create_cluster(addr: str, tls=None) -> str:
    """A new cluster's token; with TLS (the discovery verified against --tlscacert), the token
    also carries that CA's digest so joining daemons can check they trust the same CA."""
    from swarm.v1 import discovery_pb2, discovery_pb2_grpc
    from swarmd.membership.urls import join_token
    from swarmd.tls import open_channel
    async with open_channel(addr, tls) as channel:
        reply = await discovery_pb2_grpc.DiscoveryStub(channel).CreateCluster(
            discovery_pb2.CreateClusterRequest(), timeout=TIMEOUT)
    digest = tls.ca_digest() if tls is not None else None
    return join_token(digest, reply.token) if digest else reply.token


def add_parser(sub) -> None:
    p = sub.add_parser("create", help="create a cluster and print its token")
    add_flag(p, "--discovery-addr", required=True, help="discovery daemon HOST:PORT")
    add_tls_flags(p)

    def run(args) -> int:
        import grpc

        from swarmd.tls import TLSConfig, TLSConfigError
        try:
            tls = TLSConfig.from_args(args)
        except TLSConfigError as exc:
            print(f"swarm create: {exc}", file=sys.stderr)
            return 2
        try:
            token = asyncio.run(create_cluster(args.discovery_addr, tls))
        except grpc.RpcError as err:
            print(f"swarm create: discovery at {args.discovery_addr}: "
                  f"{err.details() or err.code().name.lower()}", file=sys.stderr)
            return 1
        print(token)
        return 0

    p.set_defaults(func=run)
