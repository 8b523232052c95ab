"""`swarm list`: one line per node of a cluster: name, address, status."""
from __future__ import annotations

import asyncio
import sys

from swarmd.common.cluster_access import ClusterAccess
from swarmd.common.config import add_flag
from swarmd.common.etcd_tls import add_etcd_tls_flags
from swarmd.common.tls import add_tls_flags

STATUS = {0: "unknown", 1: "pending", 2: "healthy", 3: "unhealthy"}


def format_nodes(nodes) -> list[str]:
    """Aligned `name  address  status` lines, sorted by name then address."""
    rows = sorted(((n.info.name or n.info.addr, n.info.addr, STATUS.get(n.state, "unknown")) for n in nodes))
    if not rows:
        return []
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return [f"{name:<{w0}}  {addr:<{w1}}  {status}" for name, addr, status in rows]


async def list_nodes(cluster: ClusterAccess):
    membership = cluster.open_membership()
    try:
        return await membership.list_nodes()
    finally:
        await membership.close()


def add_parser(sub) -> None:
    p = sub.add_parser("list", help="list the nodes of a cluster")
    add_flag(p, "--discovery-addr", default=None, help="discovery daemon HOST:PORT (for token://)")
    add_tls_flags(p)
    add_etcd_tls_flags(p, "etcd:// discovery URLs")
    p.add_argument("discovery_url", nargs="?", default=None,
                   help="token://TOKEN, etcd://HOST:PORT/PREFIX, nodes://ADDR,… or file:///path [env SWARM_DISCOVERY]")

    p.set_defaults(configure=configure, func=run)


def configure(args) -> ClusterAccess:
    from swarmd.cli.join import discovery_url
    args.discovery_url = discovery_url(args, "list")
    return ClusterAccess.from_args(args)


def run(cluster: ClusterAccess) -> int:
    from swarmd.common.membership import MembershipError, MembershipUnavailable
    try:
        nodes = asyncio.run(list_nodes(cluster))
    except (MembershipError, MembershipUnavailable) as exc:
        print(f"swarm list: {exc}", file=sys.stderr)
        return 1
    for line in format_nodes(nodes):
        print(line)
    return 0
