"""The cheaper paths of a node's sync (manager.container_records): each gives what the path it
stands in for gave, on the inputs engines send and on the odd ones."""
from __future__ import annotations

import json
import random
import zlib

import pytest

from swarmd.common.packed_documents import PRESET_DICTIONARY, pack_document, unpack_document
from swarmd.manager.container_records import ON_NODE_FAILURE, ContainerRecord, engine_time
from swarmd.manager.container_status import parse_time
from swarmd.manager.scheduler.container_spec import RESCHEDULE_LABEL, reschedule_policies
from tests.unit.test_compact_records import hollow_document

TIMES = [
    "2026-11-25T12:00:00.123456789Z", "2026-11-25T12:00:00.5Z", "2026-11-25T12:00:00Z",
    "2026-11-25T12:00:00.9999999Z", "2026-11-25T12:00:00.000000000Z", "2026-02-29T00:00:00Z",
    "2028-02-29T23:59:59.999999999Z", "0001-01-01T00:00:00Z", "", None, "garbage", "2026-11-25",
    "2026-11-25T12:00:00+02:00", "2026-11-25T12:00:00.5+02:00", "2026-11-25 12:00:00.5Z",
    "2026-11-25T12:00:00.12a4Z", "2026-11-25T12:00:00.Z", "2026-11-25T25:00:00Z", "2026-13-25T12:00:00Z",
    "2026-11-25T12:00:00ZZ", "2026-11-25T12:00:00,5Z", "2026-11-25T12:00Z", "2026-11-25T12:00:00.-5Z",
]


@pytest.mark.parametrize("text", TIMES)
def test_an_engine_time_reads_as_parse_time_reads_it(text):
    assert engine_time(text) == parse_time(text)
    if parse_time(text) is not None:
        assert engine_time(text).tzinfo == parse_time(text).tzinfo


def test_engine_times_of_every_shape_the_engine_writes_read_as_parse_time_reads_them():
    rng = random.Random(16)
    for _ in range(2000):
        frac = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 9)))
        text = (f"{rng.randint(1970, 2100):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
                f"{'.' + frac if frac else ''}Z")
        assert engine_time(text) == parse_time(text), text


def test_a_packed_document_is_the_zlib_stream_any_reader_with_the_dictionary_reads():
    _, raw = hollow_document()
    packed = pack_document(raw)
    assert unpack_document(packed) == raw
    reader = zlib.decompressobj(zdict=PRESET_DICTIONARY)
    assert reader.decompress(packed) + reader.flush() == raw
    assert pack_document(raw) == packed                 # each document from the same primed state
    assert len(packed) * 6 < len(raw)


def test_a_document_packed_the_earlier_way_still_reads():
    _, raw = hollow_document()
    earlier = zlib.compressobj(1, zdict=PRESET_DICTIONARY)
    assert unpack_document(earlier.compress(raw) + earlier.flush()) == raw


@pytest.mark.parametrize("config, expected", [
    ({"Labels": {RESCHEDULE_LABEL: '["on-node-failure"]'}}, True),
    ({"Labels": {RESCHEDULE_LABEL: "on-node-failure"}}, True),
    ({"Labels": {RESCHEDULE_LABEL: '["off"]'}}, False),
    ({"Labels": {RESCHEDULE_LABEL: ""}}, False),
    ({"Env": ["A=1", "reschedule:on-node-failure"]}, True),
    ({"Env": ["reschedule:=on-node-failure"]}, True),
    ({"Env": ["RESCHEDULE:on-node-failure", "PATH=/bin"]}, False),
    ({"Env": None, "Labels": None}, False),
    ({"Env": "reschedule:on-node-failure"}, False),
    ({}, False),
])
def test_the_reschedule_policy_is_read_only_where_it_can_be(config, expected):
    doc, _ = hollow_document()
    cfg = dict(doc["Config"], Labels=dict(doc["Config"]["Labels"]), Env=["PATH=/bin"])
    cfg.update(config)
    doc = dict(doc, Config=cfg)
    assert ContainerRecord("n1", "node1", doc).reschedules is expected
    assert (ON_NODE_FAILURE in reschedule_policies(cfg)) is expected     # what it stands in for


def test_a_record_built_by_a_sync_keeps_no_decoded_document_and_decodes_it_when_read():
    doc, raw = hollow_document("synced")
    kept = ContainerRecord("n1", "node1", doc, raw=raw)
    assert kept.doc is doc                               # stored by a call: kept decoded a while
    doc, raw = hollow_document("synced")
    synced = ContainerRecord("n1", "node1", doc, raw=raw, remember=False)
    assert synced.doc is not doc and synced.doc == json.loads(raw)
    assert synced.doc is synced.doc                      # read once: kept decoded a while
