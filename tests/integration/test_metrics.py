"""Every daemon's --metrics-addr, scraped by a real Prometheus server and queried back."""
from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request

import pytest

from swarmd.localcluster.processes import Daemon, free_port, wait_until
from swarmd.localcluster.swarm import SwarmCluster
from swarmd.common.membership.etcd_store import token_hash

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None, reason="the prometheus package is missing")


@pytest.fixture(scope="module")
def metered(lab, tmp_path_factory):
    """Discovery, one agent and a manager, each serving metrics."""
    cluster = SwarmCluster(lab, root=tmp_path_factory.mktemp("metered"), metrics=True)
    cluster.root.mkdir(parents=True, exist_ok=True)
    try:
        cluster.start_discovery()
        cluster.start_agent(0)
        cluster.start_manager()
        cluster.wait_nodes(1)
    except BaseException:
        print(cluster.logs())
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def prometheus(metered, tmp_path_factory):
    root = tmp_path_factory.mktemp("prometheus")
    jobs = {"manager": metered.metrics_addrs["manager0"], "agent": metered.metrics_addrs["agent-node1"],
            "discovery": metered.metrics_addrs["discovery"]}
    config = ["global:", "  scrape_interval: 1s", "  scrape_timeout: 1s", "scrape_configs:"]
    for job, addr in jobs.items():
        config += [f"  - job_name: {job}", "    static_configs:", f"      - targets: ['{addr}']"]
    (root / "prometheus.yml").write_text("\n".join(config) + "\n")
    addr = f"127.0.0.1:{free_port()}"
    server = Daemon("prometheus", ["prometheus", f"--config.file={root / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={root / 'data'}", f"--web.listen-address={addr}",
                                   "--log.level=warn"], root / "prometheus.log").start()

    def ready():
        with urllib.request.urlopen(f"http://{addr}/-/ready", timeout=1) as r:
            return r.status == 200
    try:
        wait_until(ready, 30, "prometheus to be ready", interval=0.2)
        yield addr
    finally:
        server.stop()


def query(addr: str, expr: str) -> list[dict]:
    url = f"http://{addr}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as r:
        doc = json.loads(r.read())
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def value_of(addr: str, expr: str, timeout: float = 30) -> float:
    """Waits until `expr` has exactly one sample and returns its value."""
    def one():
        result = query(addr, expr)
        return result[0] if len(result) == 1 else None
    return float(wait_until(one, timeout, f"prometheus to answer {expr}", interval=0.5)["value"][1])


def test_prometheus_scrapes_all_three_daemons(prometheus):
    for job in ("manager", "agent", "discovery"):
        assert value_of(prometheus, f'up{{job="{job}"}} == 1') == 1


def test_manager_metrics_queried_back(prometheus, metered):
    assert value_of(prometheus, 'swarmd_manager_nodes{state="healthy"} == 1') == 1
    with urllib.request.urlopen(f"http://{metered.manager_addrs[0]}/v1.41/containers/json", timeout=5) as r:
        assert r.status == 200
    served = value_of(prometheus, 'sum(swarmd_manager_api_requests_total{route=~".*containers/json.*",'
                                  'status="200"}) > 0')
    assert served >= 1


def test_agent_metrics_queried_back(prometheus):
    assert value_of(prometheus, "swarmd_agent_engine_up == 1") == 1
    # the manager read the node through the agent when the node joined (one SyncNode call)
    assert value_of(prometheus, 'sum(swarmd_agent_rpc_seconds_count{method="Agent/SyncNode",code="OK"}) > 0') >= 1
    assert value_of(prometheus, 'swarmd_agent_heartbeats_total{kind="heartbeat",result="ok"} > 0') >= 1
    lag = value_of(prometheus, "swarmd_agent_heartbeat_lag_seconds")
    assert 0 <= lag < 3          # below the cluster's 3s TTL: the node is a member


def test_discovery_metrics_queried_back(prometheus, metered):
    cluster = token_hash(metered.token)[:12]
    assert value_of(prometheus, f'swarmd_discovery_registered_nodes{{cluster="{cluster}"}}') == 1
    assert value_of(prometheus, 'swarmd_discovery_lease_renewals_total{code="OK"} > 0') >= 1
    assert value_of(prometheus, "swarmd_discovery_etcd_up") == 1
    assert value_of(prometheus, "swarmd_discovery_etcd_errors_total") == 0
