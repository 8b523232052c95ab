"""The manager's create/start path: one read of the container per change, events already shown by
the record skipped, late reads never replacing newer ones; the agent's keep-alive engine calls."""
from __future__ import annotations

import asyncio
import contextlib
import json

import grpc
import pytest

from swarmd.agent.engine import Engine, EngineError
from swarmd.agent.hollow import HollowEngine
from swarmd.agent.service import AgentService
from swarmd.manager.agents import AgentClient
from swarmd.manager.cluster import ClusterView, NodeView
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.placement import Placement
from swarmd.manager.scheduler import Scheduler
from swarmd.proto.swarm.v1 import types_pb2
from tests.integration.conftest import serve_agent

pytestmark = pytest.mark.timeout(60)


class CountingEngine(HollowEngine):
    """A hollow engine that counts the inspects the agent asks of it."""

    def __init__(self, name: str):
        super().__init__(name)
        self.inspects = 0

    async def inspect_container(self, container_id: str) -> bytes:
        self.inspects += 1
        return await super().inspect_container(container_id)


@pytest.fixture
async def node():
    """A real agent (AgentService on a grpc.aio server) over a counting hollow engine, followed by
    a ClusterView; yields (cluster, view, engine)."""
    engine = CountingEngine("cp-node")
    server, addr = await serve_agent(AgentService, engine, "cpnode0001", name="cp-node")
    cluster = ClusterView(lambda n: AgentClient(n.info.addr, n.info.name))
    cluster.node_joined(types_pb2.Node(info=types_pb2.NodeInfo(id="cpnode0001", name="cp-node", addr=addr),
                                       state=types_pb2.NODE_STATE_HEALTHY))
    view = cluster.nodes["cpnode0001"]
    try:
        await _until(lambda: view.healthy)
        yield cluster, view, engine
    finally:
        await cluster.close()
        await server.stop(0)


@contextlib.asynccontextmanager
async def agent_client(service_type, name: str, node_id: str):
    """A real agent (`service_type` over a counting hollow engine named `name`) and a manager's
    AgentClient to it; yields (client, server). Both are closed after."""
    engine = CountingEngine(name)
    server, addr = await serve_agent(service_type, engine, node_id, name=name)
    client = AgentClient(addr, name)
    try:
        yield client, server
    finally:
        await client.close()
        await server.stop(0)


async def _until(predicate, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def _events_applied(cluster: ClusterView, view: NodeView, engine: CountingEngine) -> None:
    """Returns once the view has applied every event the engine emitted so far: a marker
    container is created on the engine directly and its record waited for (events apply in order)."""
    marker = engine.add_container("", {"Image": "busybox"})
    await _until(lambda: marker.id in view.containers)
    engine.inspects -= 1                       # the marker's own read


async def test_create_and_start_read_the_container_once_each(node):
    cluster, view, engine = node
    await _events_applied(cluster, view, engine)
    before = engine.inspects
    created, done_at = await view.client.create_container_at("cp-web", {"Image": "busybox", "Cmd": ["true"]})
    assert done_at > 0
    rec = await cluster.refresh_container(view, created["Id"], done_at)
    assert rec is not None and rec.name == "cp-web" and not rec.state.get("Running")
    status, done_at = await view.client.container_action_at(created["Id"], "start")
    assert status == 204 and done_at > 0
    rec = await cluster.refresh_container(view, created["Id"], done_at)
    assert rec.state.get("Running")
    await _events_applied(cluster, view, engine)
    # the create and start events came after reads that already showed them: no re-read
    assert engine.inspects - before == 2
    assert cluster.find_container("cp-web").state.get("Running")


async def test_changes_made_on_the_engine_directly_still_reach_the_view(node):
    cluster, view, engine = node
    c = engine.add_container("cp-direct", {"Image": "busybox"}, running=True)
    await _until(lambda: (r := view.containers.get(c.id)) is not None and r.state.get("Running"))
    await engine.container_action(c.id, "stop", {})
    await _until(lambda: view.containers[c.id].state.get("Status") == "exited")
    await engine.container_action(c.id, "remove", {})
    await _until(lambda: c.id not in view.containers)


async def test_a_late_read_does_not_replace_a_newer_record(node):
    cluster, view, engine = node
    c = engine.add_container("cp-order", {"Image": "busybox"})
    old_doc, old_at = await view.client.inspect_container_at(c.id)
    await engine.container_action(c.id, "start", {})
    new_doc, new_at = await view.client.inspect_container_at(c.id)
    assert 0 < old_at < new_at
    cluster._store(view, new_doc, new_at)
    rec = cluster._store(view, old_doc, old_at)
    assert rec.state.get("Running") and view.containers[c.id].state.get("Running")


async def test_a_container_removed_while_being_read_is_not_brought_back(node):
    cluster, view, engine = node
    c = engine.add_container("cp-gone", {"Image": "busybox"})
    await _until(lambda: c.id in view.containers)
    reading = asyncio.create_task(cluster.refresh_container(view, c.id))
    cluster.forget(view, c.id)                 # removed (e.g. DELETE through the API) meanwhile
    assert await reading is None
    assert c.id not in view.containers


# -- the agent's engine connections ---------------------------------------------------------


async def test_engine_calls_reuse_one_connection(lab):
    engine = Engine(lab.engines[0].url)
    try:
        assert json.loads((await engine.request("GET", "/version")).body)["ApiVersion"]
        first = engine._idle[0]
        assert (await engine.request("GET", "/_ping")).body == b"OK"
        assert engine._idle == [first]
        missing = await engine.request("GET", "/containers/cp-no-such/json")
        assert missing.status == 404 and engine._idle == [first]
    finally:
        engine.close()


async def test_a_kept_connection_the_engine_closed_is_retried_on_a_new_one(tmp_path):
    """A server that answers one request per connection and then drops the connection without a
    word when the next request comes (an idle close racing a request)."""
    served = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        served.append(writer)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK")
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    sock = tmp_path / "engine.sock"
    server = await asyncio.start_unix_server(handle, path=str(sock))
    engine = Engine(f"unix://{sock}")
    try:
        assert (await engine.request("GET", "/_ping")).body == b"OK"
        assert (await engine.request("POST", "/containers/x/start")).body == b"OK"
        assert len(served) == 2                # the second call went over a new connection
    finally:
        engine.close()
        server.close()


# -- the change answered with the container read right after it --------------------------------


class FirstReadBackFails(CountingEngine):
    """A hollow engine whose first inspect after a change answers 404 (as for a container
    removed meanwhile), then answers as usual."""

    def __init__(self, name: str):
        super().__init__(name)
        self.fail_next = False

    async def create_container(self, name: str, config_json: bytes) -> dict:
        self.fail_next = True
        return await super().create_container(name, config_json)

    async def inspect_container(self, container_id: str) -> bytes:
        if self.fail_next:
            self.fail_next = False
            self.inspects += 1
            raise EngineError(404, f"No such container: {container_id}")
        return await super().inspect_container(container_id)


async def test_create_and_start_answer_with_the_container_in_one_call_each(node):
    cluster, view, engine = node
    await _events_applied(cluster, view, engine)
    before = engine.inspects
    placed = await Placement(cluster, Scheduler()).create("cp-rb", {"Image": "busybox", "Cmd": ["true"]})
    rec = cluster.find_container("cp-rb")
    assert rec.id == placed.id and rec.state.get("Status") == "created"
    status, done_at, read = await view.client.action_and_read(placed.id, "start")
    assert status == 204 and done_at > 0 and 0 < read.read_at and read.doc["State"]["Running"]
    assert cluster.took_read(view, read.doc, read.read_at).state.get("Running")
    await _events_applied(cluster, view, engine)
    # one engine read per change, inside the agent's answer; the events after them read nothing
    assert engine.inspects - before == 2
    assert cluster.find_container("cp-rb").state.get("Running")
    status, _, read = await view.client.action_and_read(placed.id, "remove", {"force": "1"})
    assert status == 204 and read.doc is None        # nothing to read after a remove


async def test_a_read_back_that_fails_is_read_once_more(tmp_path):
    engine = FirstReadBackFails("cp-fail")
    server, addr = await serve_agent(AgentService, engine, "cpnode0002", name=engine.name)
    cluster = ClusterView(lambda n: AgentClient(n.info.addr, n.info.name))
    cluster.node_joined(types_pb2.Node(info=types_pb2.NodeInfo(id="cpnode0002", name="cp-fail", addr=addr),
                                       state=types_pb2.NODE_STATE_HEALTHY))
    view = cluster.nodes["cpnode0002"]
    try:
        await _until(lambda: view.healthy)
        result, _, read = await view.client.create_and_read("cp-missed", {"Image": "busybox"})
        assert read.doc is None and read.read_at == 0          # the agent could not read it back
        placed = await Placement(cluster, Scheduler()).create("cp-again", {"Image": "busybox"})
        assert cluster.find_container("cp-again").id == placed.id   # read once more by the manager
    finally:
        await cluster.close()
        await server.stop(0)


# -- the change answered first, its read-back following on the same call ------------------------


async def test_a_streamed_change_answers_before_its_read_back_and_reads_the_engine_once(node):
    cluster, view, engine = node
    await _events_applied(cluster, view, engine)
    before = engine.inspects
    placement = Placement(cluster, Scheduler())
    placed = await placement.create("cp-first", {"Image": "busybox", "Cmd": ["true"]}, answer_first=True)
    await cluster.settled()
    rec = cluster.find_container("cp-first")
    assert rec.id == placed.id and rec.state.get("Status") == "created"
    assert not placement.names_in_flight and not view.pending
    status, done_at, read_back = await view.client.action_then_read(placed.id, "start")
    assert status == 204 and done_at > 0
    read = await read_back
    assert read.doc["State"]["Running"] and read.read_at >= done_at
    cluster.took_read(view, read.doc, read.read_at)
    await _events_applied(cluster, view, engine)
    assert engine.inspects - before == 2            # one engine read per change, events read nothing
    status, _, read_back = await view.client.action_then_read(placed.id, "remove", {"force": "1"})
    assert status == 204 and (await read_back).doc is None


async def test_a_streamed_change_the_engine_refuses_carries_the_engine_words(node):
    cluster, view, engine = node
    with pytest.raises(ApiError) as err:
        await view.client.action_then_read("cp-no-such", "start")
    assert err.value.status == 404 and "No such container" in err.value.message


class AgentBeforeChangeStream(AgentService):
    """An agent from before the Changes stream: gRPC answers it UNIMPLEMENTED."""

    async def Changes(self, request_iterator, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        yield


class AgentBeforeStreamedChanges(AgentBeforeChangeStream):
    """An agent from before the streamed calls: gRPC answers them UNIMPLEMENTED."""

    async def CreateContainerStreamed(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        yield

    async def ContainerActionStreamed(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        yield


async def test_an_agent_without_the_streamed_calls_is_asked_the_unary_ones():
    async with agent_client(AgentBeforeStreamedChanges, "cp-old", "cpnode0003") as (client, _):
        result, done_at, read_back = await client.create_then_read("cp-unary", {"Image": "busybox"})
        assert not client.streamed_changes           # a node's first change: the streamed call was tried
        read = await read_back
        assert read.doc["Id"] == result["Id"] and done_at > 0
        status, _, read_back = await client.action_then_read(result["Id"], "start")   # the stream was tried
        assert status == 204 and (await read_back).doc["State"]["Running"]
        assert not client.change_stream and not client.streamed_changes


async def test_the_events_of_changes_made_through_the_manager_ask_the_agent_nothing(node):
    cluster, view, engine = node
    await _events_applied(cluster, view, engine)
    asked: list[str] = []
    read = view.client.inspect_container_at

    async def counted(container_id: str, since: int = 0):
        asked.append(container_id)
        return await read(container_id, since)
    view.client.inspect_container_at = counted
    placement = Placement(cluster, Scheduler())
    placed = [await placement.create(f"cp-ev{i}", {"Image": "busybox"}, answer_first=True) for i in range(5)]
    await cluster.settled()
    marker = engine.add_container("", {"Image": "busybox"})      # made on the engine: its event is read
    await _until(lambda: marker.id in view.containers)
    # the create events came before or after their answers; the read-backs showed them either way
    assert asked == [marker.id]
    assert all(cluster.find_container(p.id).name == f"cp-ev{i}" for i, p in enumerate(placed))


# -- changes on the long-lived Changes stream ------------------------------------------------------


class CountedStreams(AgentService):
    """The agent, counting the Changes streams the manager opens."""

    streams = 0

    async def Changes(self, request_iterator, context):
        type(self).streams += 1
        await super().Changes(request_iterator, context)


async def test_changes_share_one_stream_each_answered_first_then_read_back():
    CountedStreams.streams = 0
    async with agent_client(CountedStreams, "cp-stream", "cpnode0004") as (client, _):
        made = await asyncio.gather(*(client.create_then_read(f"cp-s{i}", {"Image": "busybox"}) for i in range(8)))
        reads = [await read_back for _, _, read_back in made]
        assert [r.doc["Name"] for r in reads] == [f"/cp-s{i}" for i in range(8)]
        assert all(result["Id"] == r.doc["Id"] and done_at > 0 for (result, done_at, _), r in zip(made, reads))
        status, done_at, read_back = await client.action_then_read(made[0][0]["Id"], "start")
        assert status == 204 and done_at > 0 and (await read_back).doc["State"]["Running"]
        status, _, read_back = await client.action_then_read(made[0][0]["Id"], "start")
        assert status == 304 and (await read_back).doc["State"]["Running"]     # nothing to do: the engine's 304
        with pytest.raises(ApiError) as err:                                   # the engine's own status and words
            await client.action_then_read("cp-no-such", "stop")
        assert err.value.status == 404 and "No such container" in err.value.message
        assert client.change_stream and CountedStreams.streams == 1


async def test_an_idle_change_stream_is_closed_and_opened_again_for_the_next_change():
    CountedStreams.streams = 0
    async with agent_client(CountedStreams, "cp-idle", "cpnode0005") as (client, _):
        client.changes.IDLE_CLOSE = 0.2
        made = await asyncio.gather(*(client.create_then_read(f"cp-i{i}", {"Image": "busybox"}) for i in (1, 2)))
        await asyncio.gather(*(read_back for _, _, read_back in made))
        assert CountedStreams.streams == 1
        await asyncio.sleep(0.6)                         # idle: half-closed, and the agent ended it
        made = await asyncio.gather(*(client.create_then_read(f"cp-i{i}", {"Image": "busybox"}) for i in (3, 4)))
        reads = await asyncio.gather(*(read_back for _, _, read_back in made))
        assert [r.doc["Id"] for r in reads] == [m[0]["Id"] for m in made] and CountedStreams.streams == 2


async def test_a_node_changed_once_is_asked_with_one_streamed_call_and_the_next_change_opens_the_stream():
    CountedStreams.streams = 0
    async with agent_client(CountedStreams, "cp-once", "cpnode0008") as (client, _):
        result, _, read_back = await client.create_then_read("cp-o1", {"Image": "busybox"})
        assert (await read_back).doc["Id"] == result["Id"] and CountedStreams.streams == 0
        status, _, read_back = await client.action_then_read(result["Id"], "start")
        assert status == 204 and (await read_back).doc["State"]["Running"] and CountedStreams.streams == 1


async def test_a_change_stream_that_breaks_fails_its_changes_and_the_next_change_reopens_it():
    async with agent_client(AgentService, "cp-gone", "cpnode0006") as (client, server):
        await (await client.create_then_read("cp-g1", {"Image": "busybox"}))[2]
        await server.stop(0)                             # the agent goes, the stream with it
        with pytest.raises(ApiError) as err:
            await client.create_then_read("cp-g2", {"Image": "busybox"})
        assert err.value.status == 503 and "cp-gone" in err.value.message and "unreachable" in err.value.message
        assert client.change_stream                      # a broken stream is not an old agent


async def test_an_agent_without_the_change_stream_is_asked_the_streamed_calls():
    async with agent_client(AgentBeforeChangeStream, "cp-mid", "cpnode0007") as (client, _):
        result, done_at, read_back = await client.create_then_read("cp-streamed", {"Image": "busybox"})
        assert (await read_back).doc["Id"] == result["Id"] and done_at > 0
        status, _, read_back = await client.action_then_read(result["Id"], "start")   # the stream is tried
        assert status == 204 and (await read_back).doc["State"]["Running"]
        assert not client.change_stream and client.streamed_changes
