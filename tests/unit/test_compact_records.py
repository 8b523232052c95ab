"""The compact container record (manager.container_records) and the GC policy's settings: what is
kept, in what form, and that nothing a listing, a filter or an inspect reads is lost on the way."""
from __future__ import annotations

import gc
import json
from datetime import datetime, timezone

import pytest

from swarmd.agent.hollow import HollowEngine
from swarmd.manager.agents import EngineDocument
from swarmd.common.packed_documents import pack_document, unpack_document
from swarmd.manager.container_records import (DECODED_DOCUMENTS, ON_NODE_FAILURE, SWARM_ID_LABEL, ContainerRecord,
                                              shared_state)
from swarmd.manager.gc_policy import FULL_EVERY, GcPolicy, keep_long_lived
from swarmd.manager.intent import ON_NODE_FAILURE as INTENT_POLICY

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)


def hollow_document(name: str = "web", labels: dict | None = None, running: bool = True) -> tuple[dict, bytes]:
    """An inspect document as an agent relays it: the engine's bytes and what they decode to."""
    engine = HollowEngine("node1")
    body = {"Image": "busybox", "Cmd": ["sleep", "3600"], "Labels": labels or {"app": "app1", "tier": "bench"},
            "HostConfig": {"Memory": 64 << 20, "PortBindings": {"80/tcp": [{"HostPort": "8080"}]}},
            "ExposedPorts": {"80/tcp": {}}}
    c = engine.add_container(name, body, running=running, emit=False)
    raw = json.dumps(c.inspect("node1")).encode()
    doc = EngineDocument(json.loads(raw))
    doc.raw = raw
    return doc, raw


def record(name: str = "web", **kw) -> tuple[ContainerRecord, dict, bytes]:
    doc, raw = hollow_document(name, **kw)
    return ContainerRecord("n1", "node1", doc, "127.0.100.1", raw=raw, read_at=7), dict(doc), raw


def test_the_document_is_kept_compressed_and_served_as_the_engine_sent_it():
    rec, doc, raw = record()
    assert rec.document_json() + b"}" == raw.rstrip()
    assert len(pack_document(raw)) * 4 < len(raw)          # the preset dictionary carries the shape
    assert unpack_document(pack_document(raw)) == raw


def test_a_document_decoded_again_is_the_engine_document():
    first, doc, _ = record("first")
    for i in range(DECODED_DOCUMENTS + 1):                # pushes the first one out of the decoded few
        record(f"other{i}")
    assert first.doc == doc


def test_a_document_without_the_engine_bytes_is_encoded_once():
    doc = {"Id": "c" * 64, "Name": "/x", "State": {"Status": "exited"}, "Config": {"Image": "busybox"}}
    rec = ContainerRecord("n1", "node1", doc)
    assert json.loads(rec.document_json() + b"}") == doc


def test_what_listings_read_is_decoded_once_onto_the_record():
    rec, doc, _ = record(labels={"app": "a", SWARM_ID_LABEL: "s" * 64, "com.docker.swarm.reschedule-policies":
                                 json.dumps([ON_NODE_FAILURE])})
    assert (rec.id, rec.name, rec.node_id, rec.node_name, rec.host_ip) == (doc["Id"], "web", "n1", "node1",
                                                                          "127.0.100.1")
    assert rec.swarm_id == "s" * 64 and rec.reschedules and rec.read_at == 7
    assert rec.image == "busybox" and rec.image_id == doc["Image"]
    assert rec.labels == doc["Config"]["Labels"] and rec.tty is False
    assert rec.created == datetime.fromisoformat(doc["Created"][:26]).replace(tzinfo=timezone.utc)
    assert rec.state["Running"] is True and rec.state["Status"] == "running"
    assert rec.status(NOW).startswith("Up ")
    snap = rec.snapshot()
    assert snap.labels is rec.labels and snap.memory == 64 << 20 and snap.ports[0].host_port == 8080


def test_the_reschedule_policy_name_is_the_intent_store_s():
    assert ON_NODE_FAILURE == INTENT_POLICY


def test_equal_states_share_one_read_only_mapping_and_keep_only_what_the_manager_reads():
    a, _, _ = record("a")
    b, _, _ = record("b")
    assert a.state is b.state
    with pytest.raises(TypeError):
        a.state["Running"] = False
    healthy = shared_state({"Status": "running", "Running": True, "Pid": 42, "StartedAt": "2026-12-01T00:00:00Z",
                            "Health": {"Status": "healthy", "FailingStreak": 0, "Log": [{"Output": "ok"}]}})
    assert dict(healthy) == {"Status": "running", "Running": True, "Health": {"Status": "healthy"}}
    assert shared_state({"Status": "exited", "ExitCode": [1]})["ExitCode"] == [1]     # unhashable: kept apart


def test_repeated_strings_are_one_object_across_records():
    a, _, _ = record("a")
    b, _, _ = record("b")
    assert a.node_name is b.node_name and a.image is b.image
    assert a.labels["tier"] is b.labels["tier"]


def test_a_collection_walks_only_the_shared_state_and_the_snapshot_of_a_record():
    rec, _, _ = record()
    gc.collect()
    tracked = [r for r in gc.get_referents(rec) if gc.is_tracked(r)]
    assert all(r is rec.state or r is rec.snapshot() or r is ContainerRecord for r in tracked), tracked
    assert not gc.is_tracked(rec.labels)


def test_the_ps_entry_reads_like_the_engine_s_and_takes_state_overrides():
    rec, doc, _ = record()
    entry = rec.summary(NOW)
    assert entry["Names"] == ["/node1/web"] and entry["Image"] == "busybox" and entry["ImageID"] == doc["Image"]
    assert entry["Command"] == "sleep 3600" and entry["State"] == "running"
    assert {"IP": "127.0.100.1", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"} in entry["Ports"]
    assert entry.get("Nope") is None and "Mounts" in entry and len(entry) == len(dict(entry))
    assert dict(entry) == json.loads(rec.summary_json(entry))
    entry["State"], entry["Status"] = "unknown", "Host Down"
    assert json.loads(rec.summary_json(entry))["Status"] == "Host Down"
    with pytest.raises(TypeError):
        entry["Image"] = "other"


def test_the_policy_runs_full_collections_more_often_and_gives_the_thresholds_back():
    before = gc.get_threshold()
    policy = GcPolicy()
    policy.install()
    try:
        assert gc.get_threshold() == (before[0], before[1], FULL_EVERY)
    finally:
        policy.uninstall()
        gc.unfreeze()
    assert gc.get_threshold() == before


def test_keep_long_lived_takes_what_is_alive_out_of_the_generations():
    gc.unfreeze()
    try:
        kept = [[i] for i in range(100)]
        keep_long_lived()
        assert gc.get_freeze_count() >= len(kept)
        assert not any(x is kept for x in gc.get_objects())
    finally:
        gc.unfreeze()


def test_a_listing_is_each_entry_as_the_record_encodes_it_in_order_with_overrides():
    from datetime import timedelta

    from swarmd.manager.container_records import listing_json
    records = [record(f"c{i}", running=i % 3 != 0)[0] for i in range(7)]
    for later in (NOW, NOW + timedelta(seconds=5), NOW + timedelta(hours=30), NOW - timedelta(days=1)):
        assert listing_json(records, later) == b"[" + b",".join(r.summary_json_at(later) for r in records) + b"]\n"
    down = records[2].summary(NOW)
    down["State"], down["Status"] = "unknown", "Host Down"
    listed = json.loads(listing_json(records, NOW, {records[2]: down}))
    assert [e["Names"][0] for e in listed] == [f"/node1/c{i}" for i in range(7)]
    assert listed[2]["Status"] == "Host Down" and listed[3]["Status"] == json.loads(records[3].summary_json_at(NOW))["Status"]
    assert listing_json([], NOW) == b"[]\n"


def test_a_ps_entry_keeps_text_beyond_ascii():
    rec, _, _ = record(labels={"owner": "Zoë", "team": "数据"})
    assert json.loads(rec.summary_json_at(NOW))["Labels"] == {"owner": "Zoë", "team": "数据"}
    assert "Zoë".encode() in rec.summary_json_at(NOW)       # as UTF-8, as the engine writes it
