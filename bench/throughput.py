"""Throughput: containers created and started per second with 1, 4 and 16 concurrent clients.

Through the manager (which spreads them over the 3 engines) against the engines themselves, the
same clients split evenly over the 3 engines, whose rates add up to what the hosts can do.
"""
from __future__ import annotations

import asyncio
import time

from bench.apiclient import ApiClient
from bench.labswarm import lab_swarm, remove_labelled
from bench.report import Row, judged

LABEL = "swarmd.bench=throughput"


async def started_per_second(urls: list[str], clients: int, total: int, prefix: str) -> float:
    """`clients` workers (worker k on urls[k % len(urls)]) create+start `total` containers."""
    counter = iter(range(total))

    async def worker(url: str) -> None:
        client = ApiClient(url)
        try:
            for i in counter:
                created = await client.json("POST", f"/containers/create?name={prefix}{i}",
                                            {"Image": "busybox", "Cmd": ["sleep", "600"],
                                             "Labels": {"swarmd.bench": "throughput"}})
                await client.call("POST", f"/containers/{created['Id']}/start")
        finally:
            await client.close()

    t = time.perf_counter()
    await asyncio.gather(*(worker(urls[k % len(urls)]) for k in range(clients)))
    return total / (time.perf_counter() - t)


def run(quick: bool = False) -> list[Row]:
    rows: list[Row] = []
    total = 12 if quick else 48
    with lab_swarm() as swarm:
        engines = [e.url for e in swarm.lab.engines]
        try:
            for clients in (1, 4, 16):
                for side in ("engines", "manager"):
                    urls = engines if side == "engines" else [swarm.docker_host]
                    rate = asyncio.run(started_per_second(urls, clients, total, f"tp-{side}-{clients}-"))
                    asyncio.run(remove_labelled(engines, LABEL))
                    if side == "engines":
                        direct = rate
                        rows.append(judged(f"throughput: {clients} clients, 3 engines directly (sum)", rate,
                                           "ctr/s"))
                    else:
                        rows.append(judged(f"throughput: {clients} clients through the manager", rate, "ctr/s"))
                        rows.append(judged(f"throughput: {clients} clients manager/engines ratio", rate / direct,
                                           "x"))
        finally:
            asyncio.run(remove_labelled(engines, LABEL))
    return rows
