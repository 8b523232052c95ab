"""A lab of real engines with swarmd on top, for the benchmarks that compare against the engines."""
from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.apiclient import ApiClient
from swarmd.localcluster.lab import Lab
from swarmd.localcluster.swarm import SwarmCluster


@contextlib.contextmanager
def lab_swarm(engines: int = 3) -> Iterator[SwarmCluster]:
    """Real etcd and dockerd engines, discovery, one agent per engine and one manager."""
    with Lab(engines=engines, registry=False) as lab:   # the shared slot space: no bridge collides
        swarm = SwarmCluster(lab, root=Path(tempfile.mkdtemp(prefix="swarmd-bench-")))
        try:
            swarm.start()
            yield swarm
        finally:
            swarm.stop()
            for engine in lab.engines:
                engine.remove_all_containers()
            shutil.rmtree(swarm.root, ignore_errors=True)


async def remove_labelled(engine_urls: list[str], label: str) -> None:
    """Force-removes every container carrying `label` on the engines, straight through their API."""
    for url in engine_urls:
        client = ApiClient(url)
        try:
            listed = await client.json("GET", f'/containers/json?all=1&filters={{"label":["{label}"]}}')
            await asyncio.gather(*(_remove(url, c["Id"]) for c in listed))
        finally:
            await client.close()


async def _remove(url: str, cid: str) -> None:
    client = ApiClient(url)
    try:
        await client.call("DELETE", f"/containers/{cid}?force=1", ok=(204, 404))
    finally:
        await client.close()
