"""The Agent gRPC service: runs what the manager asks on the local engine, and relays its answers.

The engine is any `agent.local_engine.LocalEngine` (the node's dockerd, or a hollow one). Engine
errors end an RPC through `swarmd.common.engine_errors.abort`, so the manager sees the engine's own HTTP
status and wording. When the engine shares this host's clock, InspectContainer, CreateContainer
and ContainerAction carry engine-clock times in their trailing metadata (`swarmd.common.engine_clock`),
so that the manager skips re-reading a container for an event its record already shows; asked
with `read_back`, CreateContainer and ContainerAction answer with the container's inspect document
read right after the change, so that the manager needs no second round trip to show it.
InspectContainers reads many containers in one call (a node's sync: one call per container cost
the manager more than the record it makes of the answer).
`EngineCall` returns any status as it is; `EngineStream` relays streamed and hijacked calls frame
by frame (see proto/swarm/v1/agent.proto).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator

import grpc

from swarmd.agent.engine import EngineConnection, EngineError
from swarmd.common.http_upgrade import asks_for_upgrade
from swarmd.agent.local_engine import CONTAINER_ACTIONS, LocalEngine
from swarmd.agent.node_info import NodeInfoSource
from swarmd.proto.swarm.v1 import agent_pb2, agent_pb2_grpc
from swarmd.common import engine_clock, engine_errors, logs, packed_documents
from swarmd.common.stage_times import stages

log = logs.get("agent.service")

# the Agent RPC's action enum -> the engine's action name
_ACTIONS = {agent_pb2.ContainerActionRequest.Action.Value(f"ACTION_{name.upper()}"): name
            for name in CONTAINER_ACTIONS}
# image references that name an image by id: never pulled
_IMAGE_ID = re.compile(r"^(sha256:)?[0-9a-f]{12,64}$")


def _headers(pairs) -> list[agent_pb2.Header]:
    return [agent_pb2.Header(name=k, value=v) for k, v in pairs]


class RecentReads:
    """The documents read right after a change, by container ID, the last KEEP of them: the engine
    emits the change's event about when it answers, so the manager's read for that event (an
    InspectContainer with `since_ns`) comes while or after the agent reads the container anyway;
    it is answered with that read when it was asked no earlier than the event."""

    KEEP = 64

    def __init__(self):
        self._docs: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self._reading: dict[str, asyncio.Future] = {}

    @contextlib.contextmanager
    def reading(self, container_id: str):
        """Around one read-back; yields `keep(read_at, body)`, which remembers what it read."""
        done = asyncio.get_running_loop().create_future()
        self._reading[container_id] = done

        def keep(read_at: int, body: bytes) -> None:
            self._docs.pop(container_id, None)
            self._docs[container_id] = (read_at, body)
            if len(self._docs) > self.KEEP:
                self._docs.popitem(last=False)
        try:
            yield keep
        finally:
            if self._reading.get(container_id) is done:
                del self._reading[container_id]
            done.set_result(None)

    async def covering(self, container_id: str, since: int) -> tuple[int, bytes] | None:
        """(read_at, body) of a read-back of the container asked at or after `since` (waiting for
        one in flight), or None: the engine must be asked."""
        if since <= 0:
            return None
        reading = self._reading.get(container_id)
        if reading is not None:
            await asyncio.shield(reading)
        kept = self._docs.get(container_id)
        return kept if kept is not None and kept[0] >= since else None


class PackedDocuments:
    """Each container's inspect document packed for the manager (SyncNode's `packing`), kept with
    the document it was packed from until the next sync: a document unchanged since then (most
    are: one changes with its container's state) is not packed again."""

    def __init__(self):
        self._packed: dict[str, tuple[bytes, bytes]] = {}

    def packed(self, documents: list[tuple[str, bytes]]) -> list[bytes]:
        """Each of `documents` (container ID, inspect document) packed, in their order; only
        these containers are kept for the next time."""
        kept: dict[str, tuple[bytes, bytes]] = {}
        for container_id, doc in documents:
            hit = self._packed.get(container_id)
            if hit is None or hit[0] != doc:     # bytes compare by identity first
                hit = (doc, packed_documents.pack_document(doc.rstrip()))
            kept[container_id] = hit
        self._packed = kept
        return [hit[1] for hit in kept.values()]


class AgentService(agent_pb2_grpc.AgentServicer):
    def __init__(self, engine: LocalEngine, node: NodeInfoSource):
        self.engine = engine
        self.node = node
        self.reads = RecentReads()
        self.packs = PackedDocuments()

    def _stamp(self, context, key: str, ns: int) -> None:
        if self.engine.same_clock:
            context.set_trailing_metadata(engine_clock.trailing_metadata(key, ns))

    # -- typed calls ------------------------------------------------------------------------

    async def GetEngineInfo(self, request, context):
        try:
            facts = await self.node.read()
        except EngineError as exc:
            await engine_errors.abort(context, exc.status, exc.message)
        return agent_pb2.EngineInfo(node=facts.node, info_json=facts.info_json, version_json=facts.version_json)

    async def ListContainers(self, request, context):
        try:
            body = await self.engine.list_containers(request.all, request.filters_json)
        except EngineError as exc:
            await engine_errors.abort(context, exc.status, exc.message)
        return agent_pb2.ListContainersResponse(containers_json=body)

    async def InspectContainer(self, request, context):
        clock = stages("agent-inspect")
        kept = await self.reads.covering(request.id, request.since_ns) if self.engine.same_clock else None
        if kept is not None:          # read right after the change this event is of: no second read
            self._stamp(context, engine_clock.READ_AT, kept[0])
            return agent_pb2.JsonDocument(json=kept[1])
        asked_at = time.time_ns()
        try:
            body = await self.engine.inspect_container(request.id)
        except EngineError as exc:
            await engine_errors.abort(context, exc.status, exc.message)
        clock.mark("engine")
        clock.done(log)
        self._stamp(context, engine_clock.READ_AT, asked_at)
        return agent_pb2.JsonDocument(json=body)

    async def _inspect_listed(self, ids: list[str]) -> list[tuple[str, bytes]]:
        """(ID, inspect document) of the containers `ids` the engine still has, in that order (one
        removed since it was listed is left out); raises the first other EngineError."""
        return [(cid, doc) for cid, doc in zip(ids, await self.engine.inspect_containers(ids)) if doc is not None]

    async def InspectContainers(self, request, context):
        clock = stages("agent-inspect-many")
        asked_at = time.time_ns()
        try:
            docs = [doc for _, doc in await self._inspect_listed(list(request.ids))]
        except EngineError as exc:
            await engine_errors.abort(context, exc.status, exc.message)
        clock.mark("engine")
        clock.done(log)
        self._stamp(context, engine_clock.READ_AT, asked_at)
        return agent_pb2.InspectContainersResponse(json=docs)

    async def SyncNode(self, request, context):
        clock = stages("agent-sync")
        try:
            facts = await self.node.read()
            ids = await self.engine.container_ids()
            asked_at = time.time_ns()
            listed = await self._inspect_listed(ids)
            images = await self.engine.request("GET", "/images/json")
        except EngineError as exc:
            await engine_errors.abort(context, exc.status, exc.message)
        clock.mark("engine")
        answer = agent_pb2.SyncNodeResponse(
            engine=agent_pb2.EngineInfo(node=facts.node, info_json=facts.info_json, version_json=facts.version_json),
            read_at_ns=asked_at if self.engine.same_clock else 0,
            images_json=images.body if images.status == 200 else b"")
        if request.packing == packed_documents.DICTIONARY_ID:     # packed here, unpacked by the manager
            answer.packed_containers.extend(self.packs.packed(listed))
            clock.mark("pack")
        else:
            answer.containers.extend(doc for _, doc in listed)
        clock.done(log)
        return answer

    async def CreateContainer(self, request, context):
        created, clock = await self._created(request, context)
        self._stamp(context, engine_clock.DONE_AT, time.time_ns())
        answer = agent_pb2.CreateContainerResponse(id=created.get("Id", ""), warnings=created.get("Warnings") or [])
        if request.read_back and answer.id:
            answer.json, answer.read_at_ns = await self._read_back(answer.id)
            clock.mark("engine_read_back")
        clock.done(log)
        return answer

    async def CreateContainerStreamed(self, request, context):
        try:
            async for message, _ in self._create_messages(request):
                yield message
        except EngineError as exc:          # only ever before the first message: the engine's refusal
            await engine_errors.abort(context, exc.status, exc.message)

    async def ContainerActionStreamed(self, request, context):
        try:
            async for message, _ in self._action_messages(request):
                yield message
        except EngineError as exc:
            await engine_errors.abort(context, exc.status, exc.message)

    async def Changes(self, request_iterator, context):
        """The manager's long-lived change stream (agent.proto): each change runs in its own task
        as it comes and writes its messages, tagged with its number, as soon as they are ready
        (one write at a time on the stream). Once the manager has half-closed the stream, the
        changes asked are finished and the stream ends."""
        writing = asyncio.Lock()

        async def put(answer) -> None:
            async with writing:
                try:
                    await context.write(answer)
                except Exception as exc:    # the manager has gone: the change is made all the same
                    log.debug("change answer not delivered", error=str(exc) or type(exc).__name__)

        changes: set[asyncio.Task] = set()
        try:
            async for change in request_iterator:
                task = asyncio.ensure_future(self._change(change, put))
                changes.add(task)
                task.add_done_callback(changes.discard)
        except grpc.aio.AioRpcError:
            pass                            # the manager went: the changes asked are still made
        finally:
            if changes:
                await asyncio.wait(set(changes))

    async def _change(self, change, put) -> None:
        seq, kind = change.seq, change.WhichOneof("change")
        try:
            if kind == "create":
                async for message, last in self._create_messages(change.create):
                    await put(agent_pb2.ChangeAnswer(seq=seq, last=last, created=message))
            elif kind == "action":
                async for message, last in self._action_messages(change.action):
                    await put(agent_pb2.ChangeAnswer(seq=seq, last=last, acted=message))
            else:
                raise EngineError(400, "a change carries a create or a container action")
        except EngineError as exc:
            await put(agent_pb2.ChangeAnswer(seq=seq, last=True, error=agent_pb2.ChangeError(
                status=exc.status, message=engine_errors.shown_message(exc.status, exc.message))))
        except Exception as exc:    # a bug here: the change still gets an answer, never a hung wait
            log.error("change failed", exc_info=exc, seq=seq, kind=kind)
            await put(agent_pb2.ChangeAnswer(seq=seq, last=True, error=agent_pb2.ChangeError(
                status=500, message=f"the agent failed the change: {type(exc).__name__}")))

    async def _create_messages(self, request) -> AsyncIterator[tuple[agent_pb2.CreateContainerResponse, bool]]:
        """The messages of a streamed create, each with whether it is the last: the engine's answer,
        then (with read_back) the read-back. EngineError when the engine refuses the create."""
        created, clock = await self._create_clocked(request)
        answer = agent_pb2.CreateContainerResponse(id=created.get("Id", ""), warnings=created.get("Warnings") or [],
                                                   done_at_ns=self._done_at())
        if not (request.read_back and answer.id):
            yield answer, True
            return
        async for message in self._answer_then_read_back(answer, answer.id, clock,
                                                         agent_pb2.CreateContainerResponse):
            yield message

    async def _action_messages(self, request) -> AsyncIterator[tuple[agent_pb2.ContainerActionResponse, bool]]:
        """The messages of a streamed action, as _create_messages."""
        action, status, clock = await self._act(request)
        answer = agent_pb2.ContainerActionResponse(status=status, done_at_ns=self._done_at())
        if not request.read_back or action == "remove":
            yield answer, True
            return
        async for message in self._answer_then_read_back(answer, request.id, clock,
                                                         agent_pb2.ContainerActionResponse):
            yield message

    async def _answer_then_read_back(self, answer, container_id: str, clock, message_type):
        """The two messages of a streamed change, each with whether it is the last: `answer`, then
        the read-back as a `message_type`. The read is asked before the answer goes, so that a read
        for this change's event (which may reach the manager first) waits for it rather than asking
        the engine again."""
        reading = asyncio.ensure_future(self._read_back(container_id))
        try:
            yield answer, False
            clock.mark("answer_sent")
            doc, read_at = await reading
        finally:
            if not reading.done():
                reading.cancel()
        clock.mark("read_back")
        clock.done(log)
        yield message_type(json=doc, read_at_ns=read_at), True

    async def _created(self, request, context) -> tuple[dict, object]:
        """The engine's answer to a CreateContainer request and the call's stage clock; the call
        ends with the engine's error when it refuses."""
        try:
            return await self._create_clocked(request)
        except EngineError as exc:
            await engine_errors.abort(context, exc.status, exc.message)

    async def _create_clocked(self, request) -> tuple[dict, object]:
        """_created without a call to end: EngineError when the engine refuses the create."""
        clock = stages("agent-create")
        created = await self._create(request.name, request.config_json)
        clock.mark("engine_create")
        return created, clock

    async def _acted(self, request, context) -> tuple[str, int, object]:
        """A ContainerAction request's action, the engine's status for it and the call's stage
        clock; the call ends with the engine's error when it refuses."""
        try:
            return await self._act(request)
        except EngineError as exc:
            await engine_errors.abort(context, exc.status, exc.message)

    async def _act(self, request) -> tuple[str, int, object]:
        """_acted without a call to end: EngineError when the engine refuses (or the action is unknown)."""
        action = _ACTIONS.get(request.action)
        if action is None:
            raise EngineError(400, f"unknown container action {request.action}")
        clock = stages(f"agent-{action}")
        status = await self.engine.container_action(request.id, action, dict(request.params))
        clock.mark("engine_action")
        return action, status, clock

    def _done_at(self) -> int:
        """Now on the engine's clock (this host's), or 0 when the engine runs on another clock."""
        return time.time_ns() if self.engine.same_clock else 0

    async def _read_back(self, container_id: str) -> tuple[bytes, int]:
        """The container's inspect document right after a change, and when the engine was asked
        (engine clock, 0 when unknown); empty when it cannot be read (the manager reads it then)."""
        with self.reads.reading(container_id) as keep:
            asked_at = time.time_ns()
            try:
                body = await self.engine.inspect_container(container_id)
            except EngineError as exc:
                log.debug("read-back after a change failed", id=container_id[:12], error=exc.message)
                return b"", 0
            keep(asked_at, body)
        return body, asked_at if self.engine.same_clock else 0

    async def _create(self, name: str, config_json: bytes) -> dict:
        try:
            return await self.engine.create_container(name, config_json)
        except EngineError as exc:
            image = _image_of(config_json)
            if exc.status != 404 or not exc.message.startswith("No such image") or not image \
                    or _IMAGE_ID.match(image):
                raise
        log.info("image missing, pulling it", image=image)
        await self.engine.pull_image(image)
        log.info("image pulled", image=image)
        return await self.engine.create_container(name, config_json)

    async def ContainerAction(self, request, context):
        action, status, clock = await self._acted(request, context)
        self._stamp(context, engine_clock.DONE_AT, time.time_ns())
        answer = agent_pb2.ContainerActionResponse(status=status)
        if request.read_back and action != "remove":
            answer.json, answer.read_at_ns = await self._read_back(request.id)
            clock.mark("engine_read_back")
        clock.done(log)
        return answer

    # -- relayed calls ----------------------------------------------------------------------

    async def EngineCall(self, request, context):
        try:
            resp = await self.engine.request(request.method, request.path, request.query, request.body,
                                             [(h.name, h.value) for h in request.headers])
        except EngineError as exc:
            await engine_errors.abort(context, exc.status, exc.message)
        return agent_pb2.EngineResponse(status=resp.status, headers=_headers(resp.headers), body=resp.body)

    async def EngineStream(self, request_iterator, context) -> AsyncIterator[agent_pb2.StreamFrame]:
        frames = request_iterator.__aiter__()
        try:
            first = await frames.__anext__()
        except StopAsyncIteration:
            return
        if first.WhichOneof("frame") != "open":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first frame of an EngineStream must be open")
        req = first.open
        headers = [(h.name, h.value) for h in req.headers]
        try:
            conn = await self.engine.open(req.method, req.path, req.query, req.body, headers)
        except EngineError as exc:
            await engine_errors.abort(context, exc.status, exc.message)
        stdin: asyncio.Task | None = None
        try:
            head = conn.head
            yield agent_pb2.StreamFrame(head=agent_pb2.StreamHead(status=head.status, headers=_headers(head.headers)))
            if conn.upgraded or (asks_for_upgrade(headers) and head.status < 300):
                stdin = asyncio.get_running_loop().create_task(_pump_input(frames, conn), name="engine-stdin")
            error = ""
            try:
                async for data in conn.body():
                    yield agent_pb2.StreamFrame(data=data)
            except EngineError as exc:
                error = exc.message
            yield agent_pb2.StreamFrame(end=agent_pb2.StreamEnd(error=error))
        finally:
            if stdin is not None:
                stdin.cancel()
                await asyncio.gather(stdin, return_exceptions=True)
            await conn.close()

    async def Events(self, request, context) -> AsyncIterator[agent_pb2.EngineEvent]:
        try:
            async for line in self.engine.events(request.since_unix_nano):
                yield agent_pb2.EngineEvent(json=line)
        except EngineError as exc:
            await engine_errors.abort(context, exc.status, exc.message)
        await engine_errors.abort(context, 503, "the engine ended its event stream")


async def _pump_input(frames, conn: EngineConnection) -> None:
    """Client frames to the hijacked engine connection: `data` is stdin, `close_write` its EOF."""
    try:
        async for frame in frames:
            kind = frame.WhichOneof("frame")
            if kind == "data":
                await conn.write(frame.data)
            elif kind == "close_write":
                conn.close_write()
    except (ConnectionError, grpc.RpcError) as exc:
        log.debug("stdin relay stopped", error=str(exc))


def _image_of(config_json: bytes) -> str:
    try:
        doc = json.loads(config_json or b"{}")
    except ValueError:
        return ""
    image = doc.get("Image") if isinstance(doc, dict) else None
    return image if isinstance(image, str) else ""
