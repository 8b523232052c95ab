"""`swarm create`: ask the discovery daemon for a new cluster; print its token (last line)."""
from __future__ import annotations

import asyncio
import sys

from swarmd.config import add_flag

TIMEOUT = 10.0


async def create_cluster(addr: str) -> str:
    import grpc

    from swarm.v1 import discovery_pb2, discovery_pb2_grpc
    async with grpc.aio.insecure_channel(addr) as channel:
        reply = await discovery_pb2_grpc.DiscoveryStub(channel).CreateCluster(
            discovery_pb2.CreateClusterRequest(), timeout=TIMEOUT)
    return reply.token


def add_parser(sub) -> None:
    p = sub.add_parser("create", help="create a cluster and print its token")
    add_flag(p, "--discovery-addr", required=True, help="discovery daemon HOST:PORT")

    def run(args) -> int:
        import grpc
        try:
            token = asyncio.run(create_cluster(args.discovery_addr))
        except grpc.RpcError as err:
            print(f"swarm create: discovery at {args.discovery_addr}: "
                  f"{err.details() or err.code().name.lower()}", file=sys.stderr)
            return 1
        print(token)
        return 0

    p.set_defaults(func=run)
