"""A node's documents sent packed: the agent packs them for a manager that asks with its dictionary
(SyncNode's `packing`), keeps each packed until its document changes, and the manager stores the
packed bytes as its records' own instead of packing each document again."""
from __future__ import annotations

import json
import zlib

import pytest

from swarmd.agent.hollow import HollowEngine
from swarmd.agent.node_info import NodeInfoSource, NodeSettings
from swarmd.agent.service import AgentService
from swarmd.common.packed_documents import DICTIONARY_ID, PRESET_DICTIONARY, pack_document, unpack_document
from swarmd.manager.agents import synced_documents
from swarmd.manager.container_records import ContainerRecord
from swarmd.manager.httpd.errors import ApiError
from swarmd.proto.swarm.v1 import agent_pb2


async def hollow_service(containers: int = 3) -> tuple[HollowEngine, AgentService]:
    engine = HollowEngine("h1")
    for i in range(containers):
        created = await engine.create_container(f"c{i}", json.dumps({
            "Image": "busybox", "Cmd": ["sleep", "60"], "Labels": {"n": str(i)}}).encode())
        await engine.container_action(created["Id"], "start", {})
    return engine, AgentService(engine, NodeInfoSource(engine, NodeSettings("id-00000001", "127.0.0.1:1", "127.0.0.1")))


async def sync(service: AgentService, packing: str) -> agent_pb2.SyncNodeResponse:
    return await service.SyncNode(agent_pb2.SyncNodeRequest(packing=packing), context=None)


async def test_asked_with_its_dictionary_the_agent_sends_the_same_documents_packed():
    _, service = await hollow_service()
    plain, packed = await sync(service, ""), await sync(service, DICTIONARY_ID)
    assert len(plain.containers) == 3 and not plain.packed_containers
    assert len(packed.packed_containers) == 3 and not packed.containers
    assert [unpack_document(p) for p in packed.packed_containers] == [d.rstrip() for d in plain.containers]
    assert sum(map(len, packed.packed_containers)) * 4 < sum(map(len, plain.containers))


async def test_a_manager_with_another_dictionary_gets_the_documents_as_they_are():
    _, service = await hollow_service()
    other = await sync(service, "zlib-0000000000000000")
    assert len(other.containers) == 3 and not other.packed_containers


async def test_a_document_is_packed_again_only_once_its_container_changed():
    engine, service = await hollow_service()
    first = await sync(service, DICTIONARY_ID)
    ids = await engine.container_ids()
    await engine.container_action(ids[1], "stop", {})
    kept = service.packs.packed([(cid, await engine.inspect_container(cid)) for cid in ids])
    second = await sync(service, DICTIONARY_ID)
    assert second.packed_containers[0] == first.packed_containers[0]
    assert second.packed_containers[1] != first.packed_containers[1]
    again = service.packs.packed([(cid, await engine.inspect_container(cid)) for cid in ids])
    assert again[0] is kept[0] and again[2] is kept[2]      # the same bytes, not packed again
    assert json.loads(unpack_document(second.packed_containers[1]))["State"]["Status"] == "exited"
    await engine.container_action(ids[0], "remove", {"force": "1"})
    third = await sync(service, DICTIONARY_ID)
    assert [json.loads(unpack_document(p))["Id"] for p in third.packed_containers] == ids[1:]


async def test_the_manager_reads_packed_documents_as_sent_ones_and_stores_them_as_they_came():
    _, service = await hollow_service()
    plain, packed = await sync(service, ""), await sync(service, DICTIONARY_ID)
    sent, unpacked = synced_documents(plain), synced_documents(packed)
    assert [dict(d) for d in unpacked] == [dict(d) for d in sent]
    assert [d.packed for d in unpacked] == list(packed.packed_containers)
    # packed otherwise than the manager would (another level): the record keeps what it was given
    other = zlib.compressobj(9, zdict=PRESET_DICTIONARY)
    given = other.compress(sent[0].raw.rstrip()) + other.flush()
    assert given != pack_document(sent[0].raw.rstrip())
    doc = unpacked[0]
    record = ContainerRecord("id-00000001", "h1", doc, raw=doc.raw, packed=given, remember=False)
    assert record._packed is given
    assert record.doc == dict(sent[0])
    made_here = ContainerRecord("id-00000001", "h1", sent[0], raw=sent[0].raw, remember=False)
    assert made_here._packed == pack_document(sent[0].raw.rstrip())


@pytest.mark.parametrize("bad", [b"not zlib", pack_document(b'{"Id": "x"}')[:-3],
                                 pack_document(b'{"Id": "x"}') + b"tail"])
def test_a_packed_document_that_does_not_unpack_fails_the_sync_clearly(bad):
    synced = agent_pb2.SyncNodeResponse(packed_containers=[pack_document(b'{"Id": "a"}'), bad])
    with pytest.raises(ApiError) as err:
        synced_documents(synced)
    assert err.value.status == 502 and "does not unpack" in err.value.message
