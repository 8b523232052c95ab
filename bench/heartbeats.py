"""Heartbeats at scale: what the discovery tier sustains, over one daemon and over two.

A fleet of hollow nodes (no containers, no manager: lease renewals change no key, so a manager
watching the nodes sees none of them) heartbeats at the agents' default period through one or
two discovery daemons. Over a steady window the rows give the renewals answered per second
against the renewals offered (nodes / period), each daemon's CPU (from /proc/<pid>/stat, as a
share of one core), etcd's CPU, and how many nodes lost their lease and registered again.
"""
from __future__ import annotations

import time

from bench.hollowlab import HollowCluster, cpu_seconds
from bench.report import Row, judged, print_table
from swarmd.common import config
from swarmd.localcluster.processes import wait_until

WINDOW = 20.0          # seconds of steady heartbeats measured


def measure(nodes: int, daemons: int, heartbeat: str = "2s", ttl: str = "6s") -> list[Row]:
    period = config.parse_duration(heartbeat)
    offered = nodes / period
    label = f"heartbeats: {nodes} nodes every {heartbeat} (lease {ttl}) over {daemons} discovery daemon" + \
        ("s" if daemons > 1 else "")
    cluster = HollowCluster(nodes, 0, daemons=daemons, heartbeat=heartbeat, ttl=ttl)
    rows: list[Row] = []
    try:
        cluster.start_membership()
        t0 = time.perf_counter()
        cluster.start_fleets()

        def registered() -> bool:
            cluster.check_running()
            return sum(cluster.registrations()) >= nodes

        wait_until(registered, 600, f"{nodes} registrations", interval=0.5)
        # registrations answered, not distinct nodes: under overload the count includes nodes that
        # lost their lease and registered again, which the "leases lost" row then shows
        rows.append(judged(f"{label}: registrations answered reach the node count", time.perf_counter() - t0, "s"))
        time.sleep(2 * period)       # past the first heartbeats' burst: the steady state is measured
        pids = [d.pid for d in cluster.discoveries]
        registered0 = sum(cluster.registrations())
        per0 = cluster.renewals()
        cpu0 = [cpu_seconds(p) for p in pids]
        etcd_pid = cluster.etcd.daemon.pid
        etcd0 = cpu_seconds(etcd_pid)
        w0 = time.perf_counter()
        time.sleep(WINDOW)
        seconds = time.perf_counter() - w0
        per = [b - a for a, b in zip(per0, cluster.renewals())]
        renewed = sum(per)             # one scrape per daemon at each end: the shares add up
        cpu = [(cpu_seconds(p) - c) / seconds * 100 for p, c in zip(pids, cpu0)]
        etcd = (cpu_seconds(etcd_pid) - etcd0) / seconds * 100
        cluster.check_running()
        rows.append(judged(f"{label}: renewals answered/s (offered {offered:.0f}/s)", renewed / seconds,
                           "renew/s", f">= {offered * 0.95:.0f}"))
        if daemons > 1:
            rows.append(judged(f"{label}: busiest daemon's share of the renewals", max(per) / max(1, renewed) * 100,
                               "%", f"<= {100 / daemons * 1.2:.0f}"))
        for i, c in enumerate(cpu):
            rows.append(judged(f"{label}: discovery daemon {i} CPU", c, "% core"))
        rows.append(judged(f"{label}: etcd CPU", etcd, "% core"))
        rows.append(judged(f"{label}: leases lost and registered again in {WINDOW:.0f} s",
                           sum(cluster.registrations()) - registered0, "nodes", "<= 0"))
    finally:
        cluster.stop()
    return rows


def run(nodes: int = 5000, daemons: tuple[int, ...] = (1, 2), heartbeat: str = "2s", ttl: str = "6s") -> list[Row]:
    """The rows for each daemon count; `heartbeat`/`ttl` other than the agents' 2 s / 6 s default
    are named in every row (keep the lease three heartbeats: loss is then still seen within three)."""
    rows: list[Row] = []
    for d in daemons:
        measured = measure(nodes, d, heartbeat, ttl)
        print_table(measured)          # kept on screen if a later configuration fails
        rows += measured
    return rows
