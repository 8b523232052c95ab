"""A `docker-registry` (distribution) on loopback: engines trust 127.0.0.0/8 without TLS."""
from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

from swarmd.localcluster.processes import Daemon, DaemonExited, free_port, wait_until


class Registry:
    def __init__(self, root: Path, port: int | None = None):
        self.root = root
        self.port = port or free_port()
        self.inherited_fds: tuple[int, ...] = ()   # what its daemon inherits (a lab's slot lock)
        self.daemon: Daemon | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> "Registry":
        storage = self.root / "storage"
        shutil.rmtree(storage, ignore_errors=True)
        storage.mkdir(parents=True)
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.address}\n"
        )
        self.daemon = Daemon(
            "registry", [shutil.which("docker-registry") or "docker-registry", "serve", str(config)],
            self.root / "registry.log", pass_fds=self.inherited_fds,
        ).start()
        wait_until(self._ready, timeout, f"registry on {self.address}")
        return self

    def _ready(self) -> bool:
        if not self.daemon or not self.daemon.running():
            raise DaemonExited(f"registry exited:\n{self.daemon.log_tail() if self.daemon else ''}")
        with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1) as r:
            return r.status == 200

    def stop(self) -> None:
        if self.daemon:
            self.daemon.stop()
