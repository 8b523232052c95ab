"""A local cluster's infrastructure: etcd, N engines with the lab images, a registry."""
from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from swarmd.localcluster import images, slots
from swarmd.localcluster.engine import DockerEngine
from swarmd.localcluster.etcd import EtcdServer
from swarmd.localcluster.registry import Registry

IMAGE_CACHE = slots.STATE_ROOT / "image-cache"


class Lab:
    """Starts and stops the real daemons a cluster runs on. Use as a context manager."""

    def __init__(self, engines: int = 3, registry: bool = True, prefix: str = "slot",
                 daemons_hold_slot: bool = False):
        """`daemons_hold_slot`: every daemon inherits the slot's lock, so the slot stays taken
        while any of them lives, even after the process that started them died (a dev cluster
        whose supervisor was killed): no other lab then starts in its directories and on its
        bridges while `swarm down` still clears them."""
        if not 1 <= engines <= slots.MAX_ENGINES:
            raise ValueError(f"engines must be 1..{slots.MAX_ENGINES}")
        self.slot = slots.acquire(prefix)
        self.root: Path = self.slot.root
        self.etcd = EtcdServer(self.root / "etcd")
        self.registry = Registry(self.root / "registry") if registry else None
        self.engines = [
            DockerEngine(
                self.root / f"engine{i}", name=f"node{i + 1}",
                bridge=self.slot.bridge_name(i), bridge_cidr=self.slot.bridge_cidr(i),
                host_ip=self.slot.host_ip(i), address_pool=self.slot.address_pool(i),
                labels={"lab.index": str(i + 1)},
            )
            for i in range(engines)
        ]
        if daemons_hold_slot:
            for part in self._parts():
                part.inherited_fds = (self.slot.lock_fd,)

    def _parts(self) -> list:
        return [*self.engines, self.etcd, *([self.registry] if self.registry else [])]

    def start(self) -> "Lab":
        try:
            with ThreadPoolExecutor(len(self.engines) + 2) as pool:
                futures = [pool.submit(e.start) for e in self.engines]
                futures.append(pool.submit(self.etcd.start))
                if self.registry:
                    futures.append(pool.submit(self.registry.start))
                for f in futures:
                    f.result()
                archive = images.image_archive(IMAGE_CACHE, self.engines[0].url)
                for f in [pool.submit(images.load_images, archive, e.url) for e in self.engines]:
                    f.result()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stops every daemon and gives the slot back; a second call does nothing (the slot
        may be another lab's by then, and so its bridges and directories)."""
        if not self.slot.held:
            return
        with ThreadPoolExecutor(len(self.engines) + 2) as pool:
            futures = [pool.submit(e.stop) for e in self.engines]
            futures.append(pool.submit(self.etcd.stop))
            if self.registry:
                futures.append(pool.submit(self.registry.stop))
            errors = [f.exception() for f in futures if f.exception()]
        for sub in ("etcd", "registry"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
        self.slot.release()
        if errors:
            raise errors[0]

    def __enter__(self) -> "Lab":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
