"""`swarm down`: stop the dev cluster `swarm up` started, every process by its pid."""
from __future__ import annotations

import sys
from pathlib import Path

from swarmd.common.config import add_flag


def add_parser(sub) -> None:
    p = sub.add_parser("down", help="stop the local dev cluster started by `swarm up`")
    add_flag(p, "--state-dir", default=None, help="the state directory given to `swarm up`")
    p.set_defaults(configure=configure, func=run)


def configure(args) -> Path:
    """The state directory to stop the cluster of: all `swarm down` needs."""
    from swarmd.localcluster import devcluster
    return Path(args.state_dir) if args.state_dir else devcluster.DEFAULT_STATE_DIR


def run(state_dir: Path) -> int:
    from swarmd.localcluster import devcluster
    try:
        leftovers = devcluster.down(state_dir)
    except devcluster.DevClusterError as exc:
        print(f"swarm down: {exc}", file=sys.stderr)
        return 1
    if leftovers:
        print(f"swarm down: the supervisor had gone; stopped {', '.join(leftovers)} by pid", file=sys.stderr)
    print("swarm down: the dev cluster is stopped", file=sys.stderr)
    return 0
