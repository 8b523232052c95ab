"""A single-member etcd server on loopback, plain or with TLS and client-certificate auth."""
from __future__ import annotations

import shutil
import ssl
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from swarmd.localcluster.processes import Daemon, DaemonExited, free_port, wait_until


@dataclass(frozen=True)
class ServerTLS:
    """etcd's server certificate and key, and the CA whose certificates clients must present.

    The server pair also authenticates the health check, so it needs clientAuth too (swarmd
    node certificates carry both)."""

    cacert: Path
    cert: Path
    key: Path


class EtcdServer:
    def __init__(self, root: Path, name: str = "etcd", tls: ServerTLS | None = None):
        self.root = root
        self.name = name
        self.tls = tls
        self.client_port = free_port()
        self.peer_port = free_port()
        self.inherited_fds: tuple[int, ...] = ()   # what its daemon inherits (a lab's slot lock)
        self.daemon: Daemon | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.endpoint}"

    def _tls_args(self) -> list[str]:
        if self.tls is None:
            return []
        return ["--cert-file", str(self.tls.cert), "--key-file", str(self.tls.key),
                "--trusted-ca-file", str(self.tls.cacert), "--client-cert-auth"]

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
                *self._tls_args(),
            ],
            self.root / "etcd.log",
            env={"ETCD_UNSUPPORTED_ARCH": "", "ETCDCTL_API": "3"},
            pass_fds=self.inherited_fds,
        ).start()
        wait_until(self.healthy, timeout, f"etcd on {self.endpoint}")
        return self

    def healthy(self) -> bool:
        if not self.daemon or not self.daemon.running():
            raise DaemonExited(f"etcd exited:\n{self.daemon.log_tail() if self.daemon else ''}")
        context = None
        if self.tls is not None:
            context = ssl.create_default_context(cafile=str(self.tls.cacert))
            context.load_cert_chain(str(self.tls.cert), str(self.tls.key))
        with urllib.request.urlopen(f"{self.url}/health", timeout=1, context=context) as r:
            return b'"true"' in r.read()

    def stop(self) -> None:
        if self.daemon:
            self.daemon.stop()

    def kill9(self) -> None:
        if self.daemon:
            self.daemon.kill9()
