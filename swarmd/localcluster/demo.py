"""`make demo`: `swarm up --nodes 3`, the classic swarm walkthrough through the manager, `swarm down`."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from swarmd.localcluster.swarm import swarm_argv

STEPS = [
    ["info"],
    ["run", "hello-world"],
    ["run", "hello-world"],
    ["run", "hello-world"],
    ["ps", "-a"],
]


def shown(argv: list[str]) -> str:
    return "swarm " + " ".join(argv[3:]) if argv[:3] == swarm_argv() else " ".join(argv)


def main() -> int:
    if os.geteuid() != 0:
        print("the demo runs real dockerd engines: run it as root", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        state_dir = os.path.join(tmp, "dev")
        up_argv = swarm_argv("up", "--nodes", "3", "--state-dir", state_dir)
        print(f"$ {shown(up_argv)}", flush=True)
        up = subprocess.run(up_argv, stdout=subprocess.PIPE, text=True)
        print(up.stdout, end="", flush=True)
        if up.returncode != 0:
            return 1
        docker_host = up.stdout.strip().splitlines()[-1].split("=", 1)[1]
        env = {**os.environ, "DOCKER_HOST": docker_host, "DOCKER_CONFIG": os.path.join(tmp, "docker-config")}
        env.pop("DOCKER_CONTEXT", None)
        code = 0
        try:
            for step in STEPS:
                print(f"\n$ docker {' '.join(step)}", flush=True)
                proc = subprocess.run(["docker", *step], env=env)
                if proc.returncode != 0:
                    print(f"docker {' '.join(step)} failed with exit code {proc.returncode}; logs in "
                          f"{state_dir}/swarm", file=sys.stderr)
                    code = 1
                    break
        finally:
            down_argv = swarm_argv("down", "--state-dir", state_dir)
            print(f"\n$ {shown(down_argv)}", flush=True)
            if subprocess.run(down_argv).returncode != 0:
                code = 1
    if code == 0:
        print("\n== demo done; every daemon stopped", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
