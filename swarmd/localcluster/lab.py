"""A local cluster's infrastructure: etcd, N engines with the lab images, a registry."""
from __future__ import annotations

import contextlib
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

    def __init__(self, engines: int = 3, registry: bool = True, prefix: str = "slot"):
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
        with ThreadPoolExecutor(len(self.engines) + 2) as pool:
            futures = [pool.submit(e.stop) for e in self.engines]
            futures.append(pool.submit(self.etcd.stop))
            if self.registry:
                futures.append(pool.submit(self.registry.stop))
            errors = [f.exception() for f in futures if f.exception()]
        for sub in ("etcd", "registry"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
        with contextlib.suppress(OSError):       # only when empty: nothing of a caller's is lost
            self.root.rmdir()
        self.slot.release()
        if errors:
            raise errors[0]

    def __enter__(self) -> "Lab":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
