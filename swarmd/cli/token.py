"""`swarm token rotate`: replace a cluster's join token of one role (bootstrap mode).

    swarm token rotate --discovery-addr A --ca-dir D --cluster ID|TOKEN [--role manager]

Prints the new token on its last line; every earlier token of that role stops admitting nodes, and
nodes already in keep their certificates.
"""
from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

from swarmd.cli.create import add_bootstrap_flags, bootstrap_token, check_bootstrap
from swarmd.common.config import ConfigError, add_flag, address_list


@dataclass(frozen=True)
class TokenConfig:
    discovery_addr: str
    ca_dir: str
    role: str
    cluster: str


def add_parser(sub) -> None:
    p = sub.add_parser("token", help="manage a cluster's join tokens (discovery daemons with --ca-dir)")
    verbs = p.add_subparsers(dest="token_verb", metavar="ACTION", required=True)
    rotate = verbs.add_parser("rotate", help="replace the join token of a role; the old one admits no new node")
    add_flag(rotate, "--discovery-addr", required=True, help="discovery daemon HOST:PORT")
    add_bootstrap_flags(rotate, "rotate the manager join token (default: the agent token)")
    rotate.set_defaults(verb_prog=rotate.prog, tls=False, tlsverify=False, tlscert=None, tlscacert=None)
    p.set_defaults(configure=configure, func=run)


def configure(args) -> TokenConfig:
    if not getattr(args, "ca_dir", None):
        raise ConfigError("--ca-dir: rotating a token needs the CA directory the discovery daemon runs with")
    if not (args.cluster or "").strip():
        raise ConfigError("--cluster: name the cluster (its ID, printed by `swarm create`, or one of its join tokens)")
    ca_dir, role, cluster = check_bootstrap(args)
    return TokenConfig(address_list("--discovery-addr", args.discovery_addr), ca_dir, role, cluster)


def run(cfg: TokenConfig) -> int:
    import grpc
    from swarmd.common.node_certs import admin_tls
    try:
        cluster, token = asyncio.run(bootstrap_token(cfg.discovery_addr, admin_tls(cfg.ca_dir), cfg.role,
                                                     cfg.cluster, rotate=True))
    except grpc.RpcError as err:
        print(f"swarm token: discovery at {cfg.discovery_addr}: {err.details() or err.code().name.lower()}",
              file=sys.stderr)
        return 1
    print(f"cluster {cluster}")
    print(token)
    return 0


__all__ = ["add_parser", "configure", "run"]
