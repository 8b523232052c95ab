"""A real `dockerd` running beside others: own socket, data/exec roots, bridge and host IP."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import docker

from swarmd.localcluster.processes import Daemon, DaemonExited, pid_alive, stop_pid, wait_until


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path) + "/"
    out = []
    with open("/proc/self/mounts") as f:
        for line in f:
            mnt = line.split()[1].encode().decode("unicode_escape")
            if mnt.startswith(prefix):
                out.append(mnt)
    return sorted(out, key=len, reverse=True)


def _pids_referencing(path: Path) -> list[int]:
    """Pids whose command line names `path` (the shims and containerd of one engine)."""
    needle = str(path).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


class DockerEngine:
    """One engine of the lab. `index` picks its bridge, subnet and published-port address."""

    def __init__(self, root: Path, name: str, bridge: str, bridge_cidr: str, host_ip: str,
                 labels: dict[str, str] | None = None):
        self.root = root
        self.name = name
        self.bridge = bridge
        self.bridge_cidr = bridge_cidr
        self.host_ip = host_ip
        self.labels = labels or {}
        self.daemon: Daemon | None = None

    @property
    def socket_path(self) -> Path:
        return self.root / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pidfile(self) -> Path:
        return self.root / "docker.pid"

    def client(self, timeout: int = 60) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, version="1.41", timeout=timeout)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> "DockerEngine":
        self._clean_leftovers()
        self.root.mkdir(parents=True, exist_ok=True)
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", self.bridge_cidr, "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        etc = self.root / "etc-docker"
        etc.mkdir(exist_ok=True)
        Path("/etc/docker").mkdir(exist_ok=True)  # the bind-mount target
        # A private mount namespace gives the engine its own /etc/docker (and so its own
        # key.json and engine ID); its container mounts live and die with that namespace.
        wrapper = [
            "unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", 'mount --bind "$0" /etc/docker && exec "$@"', str(etc),
        ]
        argv = wrapper + [
            shutil.which("dockerd") or "dockerd",
            "--host", self.url,
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),
            "--pidfile", str(self.pidfile),
            "--bridge", self.bridge,
            "--iptables=false",
            "--ip", self.host_ip,
            "--storage-driver", "overlay2",
            "--config-file", str(self._write_config()),
        ]
        for k, v in self.labels.items():
            argv += ["--label", f"{k}={v}"]
        self._argv = argv
        self.daemon = Daemon(self.name, argv, self.root / "dockerd.log").start()
        wait_until(self._ping, timeout, f"dockerd {self.name} on {self.socket_path}", interval=0.1)
        return self

    def restart(self, down_for: float = 0.0, timeout: float = 60) -> "DockerEngine":
        """Stops dockerd (its containers stop with it) and starts it again on the same data, as a
        host's engine restart does; `down_for` seconds pass in between."""
        self.daemon.stop(timeout=20)
        if down_for:
            time.sleep(down_for)
        self.daemon = Daemon(self.name, self._argv, self.root / "dockerd.log").start()
        wait_until(self._ping, timeout, f"dockerd {self.name} to come back", interval=0.1)
        return self

    def _write_config(self) -> Path:
        path = self.root / "daemon.json"
        path.write_text("{}\n")
        return path

    def _ping(self) -> bool:
        if not self.daemon or not self.daemon.running():
            raise DaemonExited(f"dockerd {self.name} exited:\n{self.daemon.log_tail() if self.daemon else ''}")
        if not self.socket_path.exists():
            return False
        c = self.client(timeout=2)
        try:
            return c.ping()
        finally:
            c.close()

    def remove_all_containers(self) -> None:
        c = self.client(timeout=30)
        try:
            for ctr in c.api.containers(all=True):
                try:
                    c.api.remove_container(ctr["Id"], force=True, v=True)
                except docker.errors.APIError:
                    pass
        finally:
            c.close()

    def stop(self) -> None:
        if self.daemon and self.daemon.running():
            try:
                self.remove_all_containers()
            except Exception:
                pass  # the engine may already be unhealthy; the steps below still clean up
            self.daemon.stop(timeout=20)
        self._clean_leftovers()

    def _clean_leftovers(self) -> None:
        """Stops what a crashed earlier run left under this root, by pid, and removes it."""
        if self.pidfile.exists():
            try:
                pid = int(self.pidfile.read_text().strip() or 0)
            except ValueError:
                pid = 0
            if pid and pid_alive(pid) and str(self.pidfile).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                stop_pid(pid, timeout=20)
        if self.root.exists():
            for pid in _pids_referencing(self.root):
                stop_pid(pid, timeout=5)
            for mnt in _mounts_under(self.root):
                _run("umount", "-l", mnt, check=False)
            shutil.rmtree(self.root, ignore_errors=True)
        if _run("ip", "link", "show", self.bridge, check=False).returncode == 0:
            _run("ip", "link", "del", self.bridge, check=False)
