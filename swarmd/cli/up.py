"""`swarm up`: a local development cluster (etcd, N engines, discovery, agents, a manager)."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from swarmd.common.config import ConfigError, add_flag, parse_duration, positive


@dataclass(frozen=True)
class UpConfig:
    nodes: int
    state_dir: Path
    up_timeout: float


def add_parser(sub) -> None:
    p = sub.add_parser("up", help="start a local dev cluster of N dockerd engines in the background (root)")
    add_flag(p, "--nodes", type=int, default=3, help="how many local engines (and agents) to run, 1..6")
    add_flag(p, "--state-dir", default=None,
             help="where the state file and logs go (default /tmp/swarmd-local/dev)")
    add_flag(p, "--up-timeout", type=parse_duration, default=parse_duration("180s"),
             help="how long to wait for every node to be healthy")
    p.set_defaults(configure=configure, func=run)


def configure(args) -> UpConfig:
    from swarmd.localcluster import devcluster, slots
    if not 1 <= args.nodes <= slots.MAX_ENGINES:
        raise ConfigError(f"--nodes {args.nodes}: must be 1..{slots.MAX_ENGINES}")
    return UpConfig(args.nodes, Path(args.state_dir) if args.state_dir else devcluster.DEFAULT_STATE_DIR,
                    positive("--up-timeout", args.up_timeout))


def run(cfg: UpConfig) -> int:
    from swarmd.localcluster import devcluster
    try:
        state = devcluster.up(cfg.nodes, cfg.state_dir, cfg.up_timeout)
    except devcluster.DevClusterError as exc:
        print(f"swarm up: {exc}", file=sys.stderr)
        return 1
    err = sys.stderr
    print(f"# swarmd dev cluster: {cfg.nodes} node(s); `swarm down` stops it", file=err)
    print(f"# manager        {state['docker_host']}", file=err)
    print(f"# discovery      {state['discovery_addr']} {state['discovery_url']}", file=err)
    print(f"# etcd           {state['etcd']}", file=err)
    if state.get("registry"):
        print(f"# registry       {state['registry']}", file=err)
    for name, addr in sorted(state.get("metrics", {}).items()):
        print(f"# metrics        http://{addr}/metrics ({name})", file=err)
    print(f"# logs           {state['logs']}", file=err)
    print(f"export DOCKER_HOST={state['docker_host']}", flush=True)
    return 0
