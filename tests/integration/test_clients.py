"""Both docker CLIs that users drive the manager with: 28.x and Debian's 20.10."""
from __future__ import annotations


def test_each_cli_is_the_version_it_claims_and_reaches_the_manager(any_cli, cli, swarm):
    version = any_cli.out("version", "--format", "{{.Client.Version}}").strip()
    assert version.startswith("28." if any_cli is cli else "20.10."), version
    nodes = any_cli.out("info", "--format", "{{json .SystemStatus}}")
    assert "Nodes" in nodes, nodes
    assert "Hello from Docker!" in any_cli.out("run", "--rm", "hello-world")
