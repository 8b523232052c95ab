"""Pure helpers behind metrics and SIGHUP reloads."""
from __future__ import annotations

from swarmd.discovery.metrics import count_nodes
from swarmd.common.grpc_metrics import method_label
from swarmd.common.reload import env_file_from, read_env_file


def test_method_label_drops_the_package():
    assert method_label("/swarm.v1.Agent/EngineCall") == "Agent/EngineCall"
    assert method_label("/grpc.health.v1.Health/Check") == "Health/Check"


def test_count_nodes_per_cluster_includes_empty_clusters():
    a, b = "a" * 64, "b" * 64
    keys = [f"/swarmd/clusters/{a}".encode(), f"/swarmd/clusters/{a}/nodes/n1".encode(),
            f"/swarmd/clusters/{a}/nodes/n2".encode(), f"/swarmd/clusters/{a}/names/node1".encode(),
            f"/swarmd/clusters/{b}".encode(), b"/other/key"]
    assert count_nodes(keys) == {"a" * 12: 2, "b" * 12: 0}


def test_read_env_file(tmp_path):
    path = tmp_path / "swarmd.env"
    path.write_text("# comment\n\nSWARM_LOG_LEVEL=debug\nexport SWARM_TTL = 6s\nSWARM_NAME=\"node 1\"\nnot a line\n")
    assert read_env_file(path) == {"SWARM_LOG_LEVEL": "debug", "SWARM_TTL": "6s", "SWARM_NAME": "node 1"}


def test_env_file_from_argv_or_environment(monkeypatch):
    monkeypatch.delenv("SWARM_ENV_FILE", raising=False)
    assert env_file_from(["--env-file", "/a", "join"]) == "/a"
    assert env_file_from(["--env-file=/b", "join"]) == "/b"
    assert env_file_from(["join"]) is None
    monkeypatch.setenv("SWARM_ENV_FILE", "/c")
    assert env_file_from(["join"]) == "/c"


def test_agent_and_discovery_never_answer_early_pings_with_goaway():
    """An idle manager-to-agent stream gets keepalive pings; a too_many_pings GOAWAY cut every
    stream of the node and showed it unreachable for a moment."""
    from swarmd.agent.daemon import SERVER_OPTIONS as agent_options
    from swarmd.discovery.daemon import SERVER_OPTIONS as discovery_options
    for options in (agent_options, discovery_options):
        assert dict(options)["grpc.http2.max_ping_strikes"] == 0
        assert dict(options)["grpc.keepalive_permit_without_calls"] == 1
