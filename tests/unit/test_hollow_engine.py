"""The hollow engine answers as the Engine API does, for the calls the agent service makes."""
from __future__ import annotations

import asyncio
import json

import pytest

from swarmd.agent.engine import EngineError
from swarmd.agent.hollow import HollowEngine, image_id, normalize_reference
from swarmd.agent.node_info import NodeInfoSource, NodeSettings


def body(**extra) -> bytes:
    return json.dumps({"Image": "busybox", "Cmd": ["sleep", "60"], **extra}).encode()


async def test_info_and_node_registration_facts():
    engine = HollowEngine("h1", cpus=8, memory=16 << 30, labels={"zone": "a"})
    facts = await NodeInfoSource(engine, NodeSettings("id-00000001", "127.0.0.1:1", "127.0.0.1")).read()
    assert facts.node.name == "h1"
    assert facts.node.cpus == 8 and facts.node.memory_bytes == 16 << 30
    assert facts.node.labels["zone"] == "a"
    assert facts.node.engine_version and facts.node.os == "linux"


async def test_create_start_inspect_list_remove():
    engine = HollowEngine("h1")
    created = await engine.create_container("web", body(Labels={"app": "x"},
                                                        HostConfig={"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}))
    cid = created["Id"]
    assert len(cid) == 64
    doc = json.loads(await engine.inspect_container("web"))
    assert doc["Id"] == cid and doc["Name"] == "/web" and doc["State"]["Status"] == "created"
    assert doc["Image"] == image_id("busybox:latest") and doc["Config"]["Labels"] == {"app": "x"}
    assert await engine.container_action(cid, "start", {}) == 204
    assert await engine.container_action(cid, "start", {}) == 304
    doc = json.loads(await engine.inspect_container(cid[:12]))
    assert doc["State"]["Running"] and doc["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"] == "8080"
    assert json.loads(await engine.list_containers(all=False))[0]["Names"] == ["/web"]
    with pytest.raises(EngineError) as err:
        await engine.container_action(cid, "remove", {})
    assert err.value.status == 409
    assert await engine.container_action(cid, "remove", {"force": "1"}) == 204
    assert json.loads(await engine.list_containers(all=True)) == []
    with pytest.raises(EngineError) as err:
        await engine.inspect_container(cid)
    assert err.value.status == 404 and err.value.message.startswith("No such container")


async def test_name_conflict_and_missing_image_then_pull():
    engine = HollowEngine("h1")
    await engine.create_container("a", body())
    with pytest.raises(EngineError) as err:
        await engine.create_container("a", body())
    assert err.value.status == 409 and '"/a" is already in use' in err.value.message
    with pytest.raises(EngineError) as err:
        await engine.create_container("", json.dumps({"Image": "nginx"}).encode())
    assert err.value.status == 404 and err.value.message == "No such image: nginx:latest"
    await engine.pull_image("nginx")
    created = await engine.create_container("", json.dumps({"Image": "nginx"}).encode())
    assert json.loads(await engine.inspect_container(created["Id"]))["Name"].startswith("/")


async def test_stop_kill_pause_states():
    engine = HollowEngine("h1")
    cid = (await engine.create_container("a", body()))["Id"]
    await engine.container_action(cid, "start", {})
    await engine.container_action(cid, "pause", {})
    assert json.loads(await engine.inspect_container(cid))["State"]["Paused"]
    await engine.container_action(cid, "unpause", {})
    await engine.container_action(cid, "kill", {})
    state = json.loads(await engine.inspect_container(cid))["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 137
    assert await engine.container_action(cid, "stop", {}) == 304
    with pytest.raises(EngineError):
        await engine.container_action(cid, "pause", {})


async def test_inspect_and_list_follow_every_change_of_state():
    # the answers are kept between calls: each change of state must still show in both
    engine = HollowEngine("h1")
    cid = (await engine.create_container("a", body()))["Id"]
    seen = []
    for action in ("start", "pause", "unpause", "restart", "stop", "start", "kill"):
        await engine.container_action(cid, action, {})
        state = json.loads(await engine.inspect_container(cid))["State"]
        listed = json.loads(await engine.list_containers(all=True))[0]
        seen.append((state["Status"], state["Pid"], listed["State"], listed["Status"]))
    assert [s[0] for s in seen] == ["running", "paused", "running", "running", "exited", "running", "exited"]
    assert [s[2] for s in seen] == [s[0] for s in seen]
    assert seen[3][1] != seen[2][1], "a restart gives the container a new pid"
    assert seen[4][3] == "Exited (0)" and seen[6][3] == "Exited (137)" and seen[1][3] == "Up (Paused)"


async def test_container_ids_come_in_the_listing_order():
    engine = HollowEngine("h1")
    ids = [(await engine.create_container(f"c{i}", body()))["Id"] for i in range(4)]
    engine.containers[ids[1]].created = "2020-01-01T00:00:00.000000001Z"      # the oldest
    engine.containers[ids[2]].created = "2099-01-01T00:00:00.000000001Z"      # the newest
    listed = [c["Id"] for c in json.loads(await engine.list_containers(all=True))]
    assert await engine.container_ids() == listed
    assert listed[0] == ids[2] and listed[-1] == ids[1] and listed[1:3] == [ids[0], ids[3]]


async def test_events_stream_and_since_replay():
    engine = HollowEngine("h1")
    stream = engine.events()
    first = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)
    cid = (await engine.create_container("a", body()))["Id"]
    event = json.loads(await asyncio.wait_for(first, 1))
    assert event["Type"] == "container" and event["Action"] == "create" and event["Actor"]["ID"] == cid
    assert event["Actor"]["Attributes"]["name"] == "a"
    await stream.aclose()
    replay = engine.events(since_unix_nano=1)
    assert json.loads(await asyncio.wait_for(replay.__anext__(), 1))["Action"] == "create"
    await replay.aclose()


async def test_relayed_calls():
    engine = HollowEngine("h1")
    images = await engine.request("GET", "/images/json")
    assert images.status == 200
    tags = sorted(t for img in json.loads(images.body) for t in img["RepoTags"])
    assert tags == ["busybox:latest", "hello-world:latest"]
    assert (await engine.request("GET", "/v1.41/_ping")).body == b"OK"
    assert (await engine.request("GET", "/containers/nope/json")).status == 404
    assert (await engine.request("POST", "/build")).status == 501
    with pytest.raises(EngineError) as err:
        await engine.open("GET", "/containers/x/logs")
    assert err.value.status == 501


def test_normalize_reference():
    assert normalize_reference("busybox") == "busybox:latest"
    assert normalize_reference("localhost:5000/x") == "localhost:5000/x:latest"
    assert normalize_reference("x:1") == "x:1"


async def test_many_documents_in_one_read_leave_a_gone_container_as_none():
    e = HollowEngine("n1")
    ids = [(await e.create_container(f"c{i}", json.dumps({"Image": "busybox"}).encode()))["Id"] for i in range(3)]
    await e.container_action(ids[1], "remove", {})
    docs = await e.inspect_containers([ids[2], ids[1], ids[0]])
    assert docs[1] is None
    assert docs[0] == await e.inspect_container(ids[2]) and docs[2] == await e.inspect_container(ids[0])


async def test_the_real_engine_reads_many_at_once_and_raises_what_is_not_a_404():
    from swarmd.agent.engine import INSPECT_CONCURRENCY, Engine

    class Answers(Engine):
        """The real engine's many-read over a table of answers in place of a socket."""

        def __init__(self, answers: dict[str, bytes | int]):
            self.answers, self.running, self.most = answers, 0, 0

        async def inspect_container(self, container_id: str) -> bytes:
            self.running += 1
            self.most = max(self.most, self.running)
            await asyncio.sleep(0.001)
            self.running -= 1
            answer = self.answers[container_id]
            if isinstance(answer, int):
                raise EngineError(answer, f"status {answer}")
            return answer

    many = {f"c{i}": f'{{"Id": "c{i}"}}'.encode() for i in range(40)}
    engine = Answers({**many, "gone": 404})
    docs = await engine.inspect_containers(["c3", "gone", *many])
    assert docs[0] == many["c3"] and docs[1] is None and docs[2:] == list(many.values())
    assert 1 < engine.most <= INSPECT_CONCURRENCY
    broken = Answers({**many, "bad": 500})
    with pytest.raises(EngineError, match="status 500"):
        await broken.inspect_containers([*many, "bad"])
    assert broken.running == 0                 # every read ended before the failure was raised
