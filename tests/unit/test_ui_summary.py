"""The web view's summary (manager.ui.summary): a cluster snapshot to the page's bounded JSON."""
from __future__ import annotations

import struct

from swarmd.manager.ui.summary import (ClusterFacts, ContainerFacts, NodeFacts, Query, event_line, inspect_summary,
                                       log_lines, port_text, summarize)


def node(name: str, containers: int = 0, status: str = "Healthy", labels: dict | None = None,
         availability: str = "active") -> NodeFacts:
    return NodeFacts(id=f"id-{name}", name=name, addr=f"{name}:2375", status=status, availability=availability,
                     labels=labels or {}, cpus=4, reserved_cpus=1.5, memory=8 << 30, reserved_memory=1 << 30,
                     containers=tuple(ContainerFacts(id=f"{name}-c{i}", name=f"web-{i}" if i % 2 else f"db-{i}",
                                                     image="busybox", state="running" if i % 3 else "exited",
                                                     ports=("0.0.0.0:8080->80/tcp",) if i == 1 else (),
                                                     created=1000 + i)
                                      for i in range(containers)))


def test_a_column_per_node_with_its_facts_and_cards():
    facts = ClusterFacts("spread", ("health", "port"), (node("n2", 2, "Unhealthy", availability="drain"),
                                                        node("n1", 1, labels={"zone": "a"})))
    page = summarize(facts)
    assert page["strategy"] == "spread" and page["filters"] == ["health", "port"]
    assert [c["name"] for c in page["nodes"]] == ["n1", "n2"]
    n1, n2 = page["nodes"]
    assert n1["labels"] == {"zone": "a"} and n1["status"] == "Healthy" and n1["availability"] == "active"
    assert n2["status"] == "Unhealthy" and n2["availability"] == "drain"
    assert n1["cpus"] == {"reserved": 1.5, "total": 4} and n1["memory"] == {"reserved": 1 << 30, "total": 8 << 30}
    assert n2["containers"] == 2 and [c["name"] for c in n2["cards"]] == ["web-1", "db-0"]   # newest first
    assert n2["cards"][0]["ports"] == ["0.0.0.0:8080->80/tcp"] and n2["cards"][0]["state"] == "running"
    assert page["totals"] == {"nodes": 2, "healthy": 1, "containers": 3, "running": 1, "matching_nodes": 2}


def test_large_clusters_are_bounded_with_counts_of_the_rest():
    facts = ClusterFacts("binpack", (), tuple(node(f"n{i:04}", 30) for i in range(1000)))
    page = summarize(facts, max_columns=60, cards_per_column=12)
    assert len(page["nodes"]) == 60 and page["more_nodes"] == 940
    assert all(len(c["cards"]) == 12 and c["more"] == 18 and c["containers"] == 30 for c in page["nodes"])
    assert page["totals"]["containers"] == 30000 and page["totals"]["nodes"] == 1000


def test_filters_narrow_nodes_by_name_and_label_and_cards_by_name():
    facts = ClusterFacts("spread", (), (node("alpha", 4, labels={"zone": "a", "ssd": ""}),
                                        node("beta", 4, labels={"zone": "b"})))
    assert [c["name"] for c in summarize(facts, Query(node="ALP"))["nodes"]] == ["alpha"]
    assert [c["name"] for c in summarize(facts, Query(label="zone=b"))["nodes"]] == ["beta"]
    assert [c["name"] for c in summarize(facts, Query(label="zone"))["nodes"]] == ["alpha", "beta"]
    assert [c["name"] for c in summarize(facts, Query(label="ssd"))["nodes"]] == ["alpha"]
    assert summarize(facts, Query(label="zone=c"))["nodes"] == []
    col = summarize(facts, Query(name="web"))["nodes"][0]
    assert col["matching"] == 2 and col["containers"] == 4 and {c["name"] for c in col["cards"]} == {"web-1", "web-3"}


def test_ports_events_inspect_and_logs():
    assert port_text({"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}) == "0.0.0.0:8080->80/tcp"
    assert port_text({"PrivatePort": 53, "Type": "udp"}) == "53/udp"
    ev = {"Type": "container", "Action": "start", "time": 5, "Actor": {"ID": "a" * 64, "Attributes": {"name": "web"}},
          "node": {"Name": "n1"}}
    assert event_line(ev) == {"time": 5, "node": "n1", "type": "container", "action": "start", "name": "web"}
    assert event_line({"Type": "image", "Action": "pull", "Actor": {"ID": "b" * 64}})["name"] == "b" * 12
    doc = {"Id": "x", "Name": "/web", "Config": {"Image": "busybox", "Cmd": ["sleep", "9"], "Env": ["SECRET=1"]},
           "State": {"Status": "running", "ExitCode": 0}, "HostConfig": {"RestartPolicy": {"Name": "always"}}}
    summary = inspect_summary(doc, "n1")
    assert summary["name"] == "web" and summary["command"] == "sleep 9" and summary["restart_policy"] == "always"
    assert "SECRET" not in repr(summary)
    framed = b"".join(struct.pack(">BxxxI", 1, len(p)) + p for p in (b"one\ntwo\n", b"three\n"))
    assert log_lines(framed, tty=False, limit=2) == ["two", "three"]
    assert log_lines(b"a\r\nb\r\n", tty=True, limit=10) == ["a", "b"]


def test_container_facts_are_read_again_only_when_the_node_changed():
    import uuid

    from swarmd.manager.cluster import NodeView
    from swarmd.manager.container_records import ContainerRecord
    from swarmd.manager.ui.facts import container_facts
    from swarmd.proto.swarm.v1 import types_pb2

    def view_with(names):
        node = types_pb2.Node(state=types_pb2.NODE_STATE_HEALTHY)
        node.info.id, node.info.name, node.info.addr = "ID-facts", "facts", "facts:4100"
        view = NodeView(node=node, client=None, connected=True)
        for name in names:
            cid = uuid.uuid4().hex * 2
            view.containers[cid] = ContainerRecord(node_id=view.id, node_name=view.name, host_ip="127.0.0.1", doc={
                "Id": cid, "Name": f"/{name}", "Created": "2024-01-01T00:00:00Z",
                "State": {"Status": "running", "Running": True}, "Config": {"Image": "busybox", "Labels": {}}})
        return view

    view = view_with(["a"])
    first = container_facts(view)
    assert [c.name for c in first] == ["a"]
    assert container_facts(view) is first                       # unchanged: the same facts, not read again
    cid = next(iter(view.containers))
    old = view.containers[cid]           # records are never changed in place: a refresh stores a new one
    view.containers[cid] = ContainerRecord(node_id=view.id, node_name=view.name, host_ip="127.0.0.1",
                                           doc={**old.doc, "State": {"Status": "exited", "Running": False}})
    view.changed()
    assert [c.state for c in container_facts(view)] == ["exited"]
    again = view_with(["b"])                                      # the node's new view, same id and generation
    assert [c.name for c in container_facts(again)] == ["b"]
