"""Proxy overhead: the same calls through the manager and straight to the engine, interleaved.

`run -d` is create + start of a busybox container (the manager is told to place it on node1 with
a constraint, so both paths use the same engine); `inspect` and `ps` read one container and the
running list. Each round runs `run -d` on both paths back to back, alternating which goes
first, then reads on both paths alternately, READS_PER_ROUND times each, so that sub-millisecond
reads get enough samples.
"""
from __future__ import annotations

import asyncio
import statistics
import time

from bench.apiclient import ApiClient
from bench.labswarm import lab_swarm, remove_labelled
from bench.report import Row, judged

LABEL = "swarmd.bench=proxy"


READS_PER_ROUND = 5


def p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.95 * len(values))) - 1)]


async def _run_d(client: ApiClient, name: str, constraint: bool) -> tuple[str, float]:
    body = {"Image": "busybox", "Cmd": ["sleep", "600"], "Labels": {"swarmd.bench": "proxy"}}
    if constraint:
        body["Env"] = ["constraint:node==node1"]
    t = time.perf_counter()
    created = await client.json("POST", f"/containers/create?name={name}", body)
    await client.call("POST", f"/containers/{created['Id']}/start")
    return created["Id"], time.perf_counter() - t


async def _timed(client: ApiClient, path: str) -> float:
    t = time.perf_counter()
    await client.call("GET", path)
    return time.perf_counter() - t


async def measure(manager_url: str, engine_url: str, rounds: int) -> dict[str, dict[str, list[float]]]:
    paths = {"manager": ApiClient(manager_url), "engine": ApiClient(engine_url)}
    times = {op: {"manager": [], "engine": []} for op in ("run -d", "inspect", "ps")}
    try:
        for side, client in paths.items():        # warm both paths (connections, caches)
            cid, _ = await _run_d(client, f"proxy-warm-{side}", side == "manager")
            await client.call("GET", f"/containers/{cid}/json")
        for i in range(rounds):
            order = ("manager", "engine") if i % 2 == 0 else ("engine", "manager")
            made = {}
            for side in order:
                cid, seconds = await _run_d(paths[side], f"proxy-{side}-{i}", side == "manager")
                times["run -d"][side].append(seconds)
                made[side] = cid
            # reads alternate between the two paths, several per round, on the containers just made
            for _ in range(READS_PER_ROUND):
                for side in order:
                    client = paths[side]
                    times["inspect"][side].append(await _timed(client, f"/containers/{made[side]}/json"))
                    times["ps"][side].append(await _timed(client, "/containers/json"))
    finally:
        for client in paths.values():
            await client.close()
    return times


def run(quick: bool = False) -> list[Row]:
    rows: list[Row] = []
    with lab_swarm() as swarm:
        engine = swarm.lab.engines[0]
        try:
            times = asyncio.run(measure(swarm.docker_host, engine.url, 10 if quick else 40))
        finally:
            asyncio.run(remove_labelled([e.url for e in swarm.lab.engines], LABEL))
    for op, sides in times.items():
        m, e = sides["manager"], sides["engine"]
        rows.append(judged(f"proxy: {op} median via manager", statistics.median(m) * 1e3, "ms"))
        rows.append(judged(f"proxy: {op} median direct to engine", statistics.median(e) * 1e3, "ms"))
        rows.append(judged(f"proxy: {op} p95 via manager", p95(m) * 1e3, "ms"))
        rows.append(judged(f"proxy: {op} p95 direct to engine", p95(e) * 1e3, "ms"))
        rows.append(judged(f"proxy: {op} median ratio manager/engine", statistics.median(m) / statistics.median(e),
                           "x", "<= 1.03"))
        rows.append(judged(f"proxy: {op} p95 ratio manager/engine", p95(m) / p95(e), "x", "<= 1.03"))
    return rows
