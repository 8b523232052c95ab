"""`swarm leave`: take a stopped agent's node out of the cluster for good.

Stopping an agent (SIGTERM: `systemctl stop`, a restart, an upgrade) keeps its node a member until
its lease runs out, so a restart moves nothing. Leaving is an explicit act: stop the agent, then
run `swarm leave` with the agent's --state-dir and discovery URL. The registration goes at once;
the managers see the node leave and move its containers that have a reschedule policy.
"""
from __future__ import annotations

import asyncio
import socket
import sys
from dataclasses import dataclass

from swarmd.common.cluster_access import ClusterAccess
from swarmd.common.config import ConfigError, add_flag
from swarmd.common.etcd_tls import add_etcd_tls_flags
from swarmd.common.tls import add_tls_flags

AGENT_PROBE_TIMEOUT = 1.0     # seconds: an agent that accepts a connection this fast is running


@dataclass(frozen=True)
class LeaveConfig:
    node_id: str
    state_dir: str
    cluster: ClusterAccess

    @classmethod
    def from_args(cls, args) -> "LeaveConfig":
        from swarmd.agent import identity
        try:
            node_id = identity.load(args.state_dir)
        except identity.IdentityError as exc:
            raise ConfigError(f"--state-dir: {exc}") from None
        if node_id is None:
            raise ConfigError(f"--state-dir {args.state_dir} holds no node id: no agent joined from there")
        return cls(node_id, args.state_dir, ClusterAccess.from_args(args, reads_members=True))


def add_parser(sub) -> None:
    p = sub.add_parser("leave", help="remove a stopped agent's node from its cluster at once")
    add_flag(p, "--state-dir", default="/var/lib/swarmd/agent", help="the agent's state directory (its node id)")
    add_flag(p, "--discovery-addr", default=None, help="discovery daemon HOST:PORT (for token://)")
    add_tls_flags(p)
    add_etcd_tls_flags(p, "etcd:// discovery URLs")
    p.add_argument("discovery_url", help="the URL the agent joined with: token://TOKEN or etcd://HOST:PORT/PREFIX")
    p.set_defaults(configure=LeaveConfig.from_args, func=run)


def agent_answers(addr: str) -> bool:
    host, _, port = addr.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=AGENT_PROBE_TIMEOUT):
            return True
    except (OSError, ValueError):
        return False


async def leave(cfg: LeaveConfig) -> tuple[int, str]:
    """(exit status, message)."""
    membership = cfg.cluster.open_membership()
    try:
        nodes = {n.info.id: n for n in await membership.list_nodes()}
    finally:
        await membership.close()
    node = nodes.get(cfg.node_id)
    if node is None:
        return 0, f"node {cfg.node_id} is not a member (it left, or its lease ran out)"
    if agent_answers(node.info.addr):
        return 1, (f"the agent of node {node.info.name!r} ({cfg.node_id}) is still running at {node.info.addr}: "
                   "stop it first (systemctl stop swarm-agent), then run swarm leave again")
    registrar = cfg.cluster.open_registrar()
    try:
        if not await registrar.leave(cfg.node_id):
            return 1, "this cluster's node list is static: remove the node's address from the list instead"
    finally:
        await registrar.close()
    return 0, f"node {node.info.name!r} ({cfg.node_id}) left the cluster"


def run(cfg: LeaveConfig) -> int:
    from swarmd.common.membership import MembershipError, MembershipUnavailable
    try:
        status, message = asyncio.run(leave(cfg))
    except (MembershipError, MembershipUnavailable) as exc:
        status, message = 1, str(exc)
    print(f"swarm leave: {message}", file=sys.stderr)
    return status
