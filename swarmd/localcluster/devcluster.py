"""`swarm up` / `swarm down`: a whole local cluster in the background, for development.

`up` starts a supervisor process (`python -m swarmd.localcluster.devcluster`) that runs a Lab
(etcd, N dockerd engines, a registry) and a SwarmCluster (discovery, one agent per engine, a
manager, all with metrics) and writes a state file once the manager sees every node healthy. The
state file names every process by pid and by a string its command line must contain, so `down`
can stop them all by pid even if the supervisor is gone. `down` asks the supervisor to stop
(SIGTERM: it stops the daemons, then the lab), then stops whatever is left.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from swarmd.localcluster import slots
from swarmd.localcluster.processes import pid_alive, stop_pid

DEFAULT_STATE_DIR = slots.STATE_ROOT / "dev"
STATE_FILE = "state.json"
SUPERVISOR_LOG = "up.log"


class DevClusterError(Exception):
    pass


@dataclass
class Process:
    name: str
    pid: int
    needle: str     # a string the pid's command line contains: guards against a reused pid

    def alive(self) -> bool:
        if not pid_alive(self.pid):
            return False
        try:
            return self.needle.encode() in Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False


def state_path(state_dir: Path) -> Path:
    return Path(state_dir) / STATE_FILE


def read_state(state_dir: Path) -> dict | None:
    try:
        return json.loads(state_path(state_dir).read_text())
    except (OSError, ValueError):
        return None


def _write_state(state_dir: Path, state: dict) -> None:
    path = state_path(state_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)


def processes(state: dict) -> list[Process]:
    return [Process(**p) for p in state.get("processes", [])]


# -- the supervisor (runs in its own process) -------------------------------------------------

def supervise(nodes: int, state_dir: Path) -> int:
    from swarmd.localcluster.lab import Lab
    from swarmd.localcluster.swarm import SwarmCluster

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    supervisor = Process("supervisor", os.getpid(), "swarmd.localcluster.devcluster")
    _write_state(state_dir, {"status": "starting", "processes": [vars(supervisor)]})
    lab = Lab(engines=nodes, daemons_hold_slot=True)
    cluster: SwarmCluster | None = None
    try:
        lab.start()
        cluster = SwarmCluster(lab, root=state_dir / "swarm", metrics=True)
        cluster.start()
        procs = [supervisor, Process("etcd", lab.etcd.daemon.pid, "etcd")]
        procs += [Process(e.name, e.daemon.pid, str(e.root)) for e in lab.engines]
        if lab.registry is not None and getattr(lab.registry, "daemon", None) is not None:
            procs.append(Process("registry", lab.registry.daemon.pid, "registry"))
        procs += [Process(d.name, d.pid, "swarmd") for d in
                  [cluster.discovery, *cluster.agents.values(), *cluster.managers]]
        _write_state(state_dir, {
            "status": "up",
            "docker_host": cluster.docker_host,
            "discovery_addr": cluster.discovery_addr,
            "discovery_url": cluster.discovery_url,
            "etcd": lab.etcd.url,
            "registry": getattr(lab.registry, "address", "") if lab.registry else "",
            "metrics": cluster.metrics_addrs,
            "engines": {e.name: e.url for e in lab.engines},
            "engine_specs": [e.spec() for e in lab.engines],
            "slot": lab.slot.index,
            "logs": str(state_dir / "swarm"),
            "processes": [vars(p) for p in procs],
        })
        print(f"dev cluster up: {nodes} nodes, DOCKER_HOST={cluster.docker_host}", flush=True)
        stop.wait()
        print("stopping the dev cluster", flush=True)
        return 0
    except BaseException as exc:
        print(f"dev cluster failed: {type(exc).__name__}: {exc}", flush=True)
        if cluster is not None:
            print(cluster.logs(), flush=True)
        _write_state(state_dir, {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                                 "processes": [vars(supervisor)]})
        return 1
    finally:
        if cluster is not None:
            cluster.stop()
        lab.stop()
        state = read_state(state_dir) or {}
        if state.get("status") != "failed":
            state_path(state_dir).unlink(missing_ok=True)


# -- the client side: up and down ---------------------------------------------------------------

def up(nodes: int, state_dir: Path = DEFAULT_STATE_DIR, timeout: float = 180.0) -> dict:
    """Starts the supervisor and waits for the cluster; returns the state (see supervise)."""
    if not 1 <= nodes <= slots.MAX_ENGINES:
        raise DevClusterError(f"--nodes must be 1..{slots.MAX_ENGINES}")
    if os.geteuid() != 0:
        raise DevClusterError("swarm up runs real dockerd engines: run it as root")
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    current = read_state(state_dir)
    if current and any(p.alive() for p in processes(current)):
        raise DevClusterError(f"a dev cluster is already up (state in {state_path(state_dir)}): "
                              "run `swarm down` first")
    state_path(state_dir).unlink(missing_ok=True)
    log = open(state_dir / SUPERVISOR_LOG, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "swarmd.localcluster.devcluster", "--nodes", str(nodes),
                             "--state-dir", str(state_dir)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(state_dir) or {}
        if state.get("status") == "up":
            return state
        if state.get("status") == "failed" or proc.poll() is not None:
            proc.wait(30)
            raise DevClusterError(f"the dev cluster did not start: {state.get('error', 'supervisor exited')}; "
                                  f"see {state_dir / SUPERVISOR_LOG}")
        time.sleep(0.2)
    down(state_dir)
    raise DevClusterError(f"the dev cluster was not up after {timeout:.0f}s; see {state_dir / SUPERVISOR_LOG}")


def down(state_dir: Path = DEFAULT_STATE_DIR, timeout: float = 60.0) -> list[str]:
    """Stops the dev cluster; returns the names of the processes it had to stop itself."""
    state_dir = Path(state_dir)
    state = read_state(state_dir)
    if state is None:
        raise DevClusterError(f"no dev cluster is up (no {state_path(state_dir)})")
    procs = processes(state)
    supervisor = next((p for p in procs if p.name == "supervisor"), None)
    if supervisor is not None and supervisor.alive():
        stop_pid(supervisor.pid, timeout=timeout)     # it stops everything else, then exits
    leftovers = [p for p in procs if p.name != "supervisor" and p.alive()]
    if leftovers:
        _stop_leftovers(leftovers, state.get("engine_specs", []))
    state_path(state_dir).unlink(missing_ok=True)
    return [p.name for p in leftovers]


def _stop_leftovers(leftovers: list[Process], engine_specs: list[dict]) -> None:
    """Stops what a dead supervisor left running. Every lab daemon holds the slot's lock, so
    etcd and the registry go last: until the engines' mounts, shims and bridges are cleared
    (as the lab would have), no other lab can take the slot and start on them."""
    from swarmd.localcluster.engine import DockerEngine
    engines = {spec["name"] for spec in engine_specs}
    last = [p for p in leftovers if p.name in ("etcd", "registry")]
    for p in leftovers:
        if p not in last and p.name not in engines:
            stop_pid(p.pid, timeout=20)        # the swarm daemons
    for spec in engine_specs:
        DockerEngine(**spec).clean_leftovers()  # stops the engine by its pidfile, then clears
    for p in last:
        stop_pid(p.pid, timeout=20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the supervisor process of `swarm up`")
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    return supervise(args.nodes, args.state_dir)


if __name__ == "__main__":
    sys.exit(main())
