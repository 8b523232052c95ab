"""The scale bench's CPU rows: per process kind, during convergence and at rest (no daemons started)."""
from __future__ import annotations

from bench.hollowlab import PROCESS_KINDS, cpu_shares
from bench.scale import convergence_cpu_rows


def test_cpu_shares_are_percent_of_one_cpu_over_the_window():
    before = {"manager": 10.0, "discovery": 4.0, "etcd": 1.0, "hollow agents": 0.0}
    after = {"manager": 10.3, "discovery": 10.0, "etcd": 2.5, "hollow agents": 3.0}
    shares = cpu_shares(before, after, 30.0)
    assert {k: round(v, 6) for k, v in shares.items()} == {"manager": 1.0, "discovery": 20.0, "etcd": 5.0,
                                                           "hollow agents": 10.0}
    assert cpu_shares({}, {"etcd": 3.0}, 10.0) == {"etcd": 30.0}        # a kind started in the window


def test_convergence_rows_name_each_kind_and_the_cpus_kept_busy():
    cpu = {"manager": 16.0, "discovery": 8.0, "etcd": 4.0, "hollow agents": 28.0}
    rows = {r.name: r.value for r in convergence_cpu_rows("scale 2000:", cpu, 40.0)}
    assert [rows[f"scale 2000: membership convergence: {k} CPU"] for k in PROCESS_KINDS] == [16.0, 8.0, 4.0, 28.0]
    assert rows["scale 2000: membership convergence: CPUs kept busy on average (all processes)"] == 1.4
    assert all(r.target == "" for r in convergence_cpu_rows("t", cpu, 40.0))     # informational


def test_the_convergence_is_read_from_the_latest_node_update_rounded_up_to_its_second():
    from datetime import datetime, timezone
    from bench.hollowlab import last_node_settled
    info = {"SystemStatus": [["Nodes", "2"], [" n1", "a:1"], ["  └ UpdatedAt", "2026-12-01T17:00:05Z"],
                             [" n2", "a:2"], ["  └ UpdatedAt", "2026-12-01T17:00:41Z"], ["  └ Status", "Healthy"]]}
    at = datetime(2026, 12, 1, 17, 0, 42, tzinfo=timezone.utc).timestamp()
    assert last_node_settled(info) == at
