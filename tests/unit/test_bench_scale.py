"""The scale bench's reading of the manager's answers and its growth rows (no daemons started)."""
from __future__ import annotations

from bench.hollowlab import histogram_quantile, metric_sum, node_statuses
from bench.scale import fleet_heartbeat, growth_rows, ps_target_ms, sizes

METRICS = """# HELP swarmd_discovery_lease_renewals_total Heartbeats answered, by status code
# TYPE swarmd_discovery_lease_renewals_total counter
swarmd_discovery_lease_renewals_total{code="OK"} 1200.0
swarmd_discovery_lease_renewals_total{code="NOT_FOUND"} 3.0
swarmd_discovery_lease_renewals_created{code="OK"} 1.7e9
swarmd_manager_gc_pause_max_seconds 0.042
swarmd_manager_scheduling_seconds_bucket{le="0.001"} 90.0
swarmd_manager_scheduling_seconds_bucket{le="0.0015"} 98.0
swarmd_manager_scheduling_seconds_bucket{le="0.002"} 99.0
swarmd_manager_scheduling_seconds_bucket{le="+Inf"} 100.0
"""


def test_metric_sums_match_the_name_and_labels_exactly():
    assert metric_sum(METRICS, "swarmd_discovery_lease_renewals_total", code="OK") == 1200.0
    assert metric_sum(METRICS, "swarmd_discovery_lease_renewals_total") == 1203.0
    assert metric_sum(METRICS, "swarmd_manager_gc_pause_max_seconds") == 0.042


def test_placement_p99_is_the_bucket_bound_that_holds_it():
    assert histogram_quantile(METRICS, "swarmd_manager_scheduling_seconds", 0.99) == 0.002
    assert histogram_quantile(METRICS, "swarmd_manager_scheduling_seconds", 0.5) == 0.001


def test_node_statuses_from_docker_info():
    info = {"SystemStatus": [["Role", "primary"], ["Nodes", "2"],
                             [" hollow0000", "127.0.0.1:4000"], ["  └ ID", "x"], ["  └ Status", "Healthy"],
                             [" hollow0001", "127.0.0.1:4001"], ["  └ Status", "Unhealthy"]]}
    assert node_statuses(info) == {"hollow0000": "Healthy", "hollow0001": "Unhealthy"}


def test_heartbeats_lengthen_with_the_fleet_and_the_ps_target_with_the_containers():
    assert [fleet_heartbeat(n) for n in (100, 1000, 2000, 5000)] == [5, 5, 10, 25]
    assert ps_target_ms(30_500) == 500 and ps_target_ms(150_000) == 1500


def test_sizes_asked_then_environment_then_default(monkeypatch):
    monkeypatch.delenv("SWARMD_BENCH_SCALE_NODES", raising=False)
    assert sizes(False) == (1000, 2000, 5000) and sizes(True) == (100, 200)
    monkeypatch.setenv("SWARMD_BENCH_SCALE_NODES", "300, 600")
    assert sizes(False) == (300, 600)
    assert sizes(False, (50,)) == (50,)


def test_growth_rows_compare_the_largest_size_with_the_smallest():
    table = {1000: {"RSS": 900.0, "info": 50.0}, 5000: {"RSS": 4500.0, "info": 100.0}, 2000: {"RSS": 1.0}}
    rows = {r.name: r.value for r in growth_rows(table)}
    assert rows == {"scale growth 1000 -> 5000 nodes (x5): RSS": 5.0,
                    "scale growth 1000 -> 5000 nodes (x5): info": 2.0}
    assert growth_rows({1000: {"RSS": 1.0}}) == []


def test_gc_rows_count_each_phase_apart():
    from bench.scale import gc_rows
    at_sync = ('swarmd_manager_gc_pause_seconds_count{generation="0"} 10.0\n'
               'swarmd_manager_gc_pause_seconds_bucket{generation="0",le="0.05"} 9.0\n'
               'swarmd_manager_gc_pause_max_seconds 0.07\nswarmd_manager_gc_pause_cpu_max_seconds 0.01\n')
    at_creates = at_sync.replace('count{generation="0"} 10.0', 'count{generation="0"} 20.0') \
                        .replace('le="0.05"} 9.0', 'le="0.05"} 17.0')
    at_end = at_creates.replace('count{generation="0"} 20.0', 'count{generation="0"} 25.0') \
                       .replace('le="0.05"} 17.0', 'le="0.05"} 22.0')
    rows = {r.name: (r.value, r.pass_) for r in gc_rows((at_sync, at_creates, at_end), "s:", "s niced:")}
    assert rows["s: longest GC pause in the manager, its CPU time (whole run)"] == (10.0, True)
    assert rows["s: GC pauses over 50 ms of wall time in the manager during the sync, by generation 0/1/2 "
                "(10/0/0 collections)"] == (1.0, None)
    assert rows["s: GC pauses over 50 ms of wall time in the manager during the creates, by generation 0/1/2 "
                "(10/0/0 collections)"] == (2.0, None)
    assert rows["s niced: GC pauses over 50 ms of wall time in the manager during the listings that followed, "
                "by generation 0/1/2 (5/0/0 collections)"] == (0.0, None)
