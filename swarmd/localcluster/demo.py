"""`make demo`: a local 3-node cluster and the classic swarm walkthrough through the manager."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from swarmd.localcluster.lab import Lab
from swarmd.localcluster.swarm import SwarmCluster

STEPS = [
    ["info"],
    ["run", "hello-world"],
    ["run", "hello-world"],
    ["run", "hello-world"],
    ["ps", "-a"],
]


def main() -> int:
    if os.geteuid() != 0:
        print("the demo runs real dockerd engines: run it as root", file=sys.stderr)
        return 1
    print("== starting etcd, 3 dockerd engines, a registry, discovery, 3 agents and a manager", flush=True)
    with Lab(engines=3) as lab:
        cluster = SwarmCluster(lab)
        try:
            cluster.start()
            with tempfile.TemporaryDirectory() as config:
                env = {**os.environ, "DOCKER_HOST": cluster.docker_host, "DOCKER_CONFIG": config}
                print(f"== export DOCKER_HOST={cluster.docker_host}", flush=True)
                for step in STEPS:
                    print(f"\n$ docker {' '.join(step)}", flush=True)
                    proc = subprocess.run(["docker", *step], env=env)
                    if proc.returncode != 0:
                        print(f"docker {' '.join(step)} failed with exit code {proc.returncode}", file=sys.stderr)
                        print(cluster.logs(), file=sys.stderr)
                        return 1
        finally:
            cluster.stop()
    print("\n== demo done; every daemon stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
