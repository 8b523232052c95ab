"""A single-member etcd server on loopback."""
from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

from swarmd.localcluster.processes import Daemon, DaemonExited, free_port, wait_until


class EtcdServer:
    def __init__(self, root: Path, name: str = "etcd"):
        self.root = root
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.daemon: Daemon | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def start(self, timeout: float = 20) -> "EtcdServer":
        data = self.root / "data"
        shutil.rmtree(data, ignore_errors=True)
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.daemon = Daemon(
            self.name,
            [
                shutil.which("etcd") or "etcd",
                "--name", self.name,
                "--data-dir", str(data),
                "--listen-client-urls", self.url,
                "--advertise-client-urls", self.url,
                "--listen-peer-urls", peer,
                "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"{self.name}={peer}",
                "--log-level", "warn",
            ],
            self.root / "etcd.log",
            env={"ETCD_UNSUPPORTED_ARCH": "", "ETCDCTL_API": "3"},
        ).start()
        wait_until(self.healthy, timeout, f"etcd on {self.endpoint}")
        return self

    def healthy(self) -> bool:
        if not self.daemon or not self.daemon.running():
            raise DaemonExited(f"etcd exited:\n{self.daemon.log_tail() if self.daemon else ''}")
        with urllib.request.urlopen(f"{self.url}/health", timeout=1) as r:
            return b'"true"' in r.read()

    def stop(self) -> None:
        if self.daemon:
            self.daemon.stop()

    def kill9(self) -> None:
        if self.daemon:
            self.daemon.kill9()
