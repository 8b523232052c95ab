"""Container intent records: their encoding, which records stand for containers a view lacks, and
which writes make the store match the containers seen."""
from __future__ import annotations

import json

from swarmd.manager.container_records import SWARM_ID_LABEL, ContainerRecord
from swarmd.manager.intent import ContainerIntent, create_body, records_to_write, standing
from swarmd.manager.scheduler.container_spec import RESCHEDULE_LABEL

POLICY = {RESCHEDULE_LABEL: json.dumps(["on-node-failure"])}


def doc(cid: str = "c1", name: str = "web", labels: dict | None = None, running: bool = True, **config) -> dict:
    return {
        "Id": cid.ljust(64, "0"), "Name": f"/{name}", "Created": "2024-01-01T00:00:00.5Z", "Image": "sha256:ab",
        "State": {"Status": "running" if running else "exited", "Running": running},
        "Config": {"Image": "busybox", "Cmd": ["sleep", "600"], "Hostname": "db1", "Env": ["A=1"],
                   "Labels": {SWARM_ID_LABEL: "s" * 64, **POLICY} if labels is None else labels, **config},
        "HostConfig": {"NetworkMode": "default", "Memory": 64 << 20, "RestartPolicy": {"Name": "no"}},
        "NetworkSettings": {"Networks": {"bridge": {"Aliases": None},
                                         "backend": {"Aliases": ["db", cid[:12]], "Links": ["x:y"]}}},
    }


def intent(swarm_id: str = "s1", node: str = "n2", name: str = "web", cid: str = "c1") -> ContainerIntent:
    return ContainerIntent(swarm_id, cid, name, node, node, "127.0.0.1:1", {"Image": "busybox"}, True, "")


def test_a_container_with_the_policy_has_a_record_that_survives_its_encoding():
    rec = ContainerIntent.of(doc(), "n2", "node2", "127.0.0.1:4000")
    assert rec is not None
    assert (rec.swarm_id, rec.name, rec.node_id, rec.node_name, rec.node_addr, rec.running) == \
        ("s" * 64, "web", "n2", "node2", "127.0.0.1:4000", True)
    assert rec.body == create_body(doc())
    assert ContainerIntent.from_json(rec.swarm_id, rec.to_json()) == rec


def test_containers_without_the_policy_or_a_swarm_id_have_none():
    assert ContainerIntent.of(doc(labels={SWARM_ID_LABEL: "s1"}), "n2", "node2", "") is None
    assert ContainerIntent.of(doc(labels=dict(POLICY)), "n2", "node2", "") is None


def test_a_stopped_container_is_recorded_as_not_running():
    assert ContainerIntent.of(doc(running=False), "n2", "node2", "").running is False


def test_an_unreadable_record_stands_for_nothing():
    for raw in (b"not json", b"[]", b'{"id": "c1"}', json.dumps({"id": "c1", "name": "web", "node": {"id": ""},
                                                                  "body": {}}).encode()):
        assert ContainerIntent.from_json("s1", raw) is None


def test_the_document_standing_for_a_container_recreates_it_as_recorded():
    rec = ContainerIntent.of(doc(), "n2", "node2", "")
    standing_doc = rec.document()
    assert create_body(standing_doc) == rec.body
    assert rec.body["Hostname"] == "db1"
    assert rec.body["NetworkingConfig"] == {"EndpointsConfig": {"backend": {"Aliases": ["db"], "Links": ["x:y"]}}}
    listed = ContainerRecord(node_id="n2", node_name="node2", doc=standing_doc)
    assert (listed.id, listed.name, listed.swarm_id, listed.state["Running"]) == (rec.id, "web", "s" * 64, True)
    assert listed.summary()["Names"] == ["/node2/web"] and listed.summary()["Image"] == "busybox"


def test_records_stand_only_for_containers_of_unreadable_nodes_with_no_copy_seen():
    records = [intent("s1", "n2", "a"), intent("s2", "n1", "b"), intent("s3", "n2", "c"), intent("s4", "n2", "d")]
    out = standing(records, readable_nodes={"n1"}, live_swarm_ids={"s3"}, live_names={"d"})
    assert [r.swarm_id for r in out] == ["s1"]


def test_writes_follow_moves_and_removals_but_keep_records_of_down_nodes():
    current = {"s1": intent("s1", "n2"), "s2": intent("s2", "n1"), "s3": intent("s3", "n1"), "s4": intent("s4", "n3")}
    seen = {"s1": intent("s1", "n1", cid="c9"), "s2": intent("s2", "n1"), "s5": intent("s5", "n3")}
    puts, deletes = records_to_write(current, seen, listed_healthy={"n1", "n3"})
    assert sorted(r.swarm_id for r in puts) == ["s1", "s5"]        # moved; new; s2 unchanged is not written
    assert deletes == ["s3", "s4"]                                  # gone from healthy nodes
    puts, deletes = records_to_write(current, seen, listed_healthy={"n1"})
    assert deletes == ["s3"]                                        # n3 down: its record stands


def test_records_of_a_removed_node_are_deleted():
    current = {"s1": intent("s1", "n2")}
    assert records_to_write(current, {}, listed_healthy={"n1"}, removed_nodes=frozenset({"n2"})) == ([], ["s1"])
