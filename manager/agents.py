"""gRPC client to one node's agent: typed calls, engine errors translated to ApiError."""
from __future__ import annotations

import asyncio
import json
import math
import time
import zlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass

import grpc

from swarmd.manager.agent_channel import agent_channel_options
from swarmd.manager.container_actions import ACTIONS
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.metrics import AGENT_RPC_ERRORS
from swarmd.proto.swarm.v1 import agent_pb2, agent_pb2_grpc
from swarmd.common import engine_clock, engine_errors, json_parse, packed_documents
from swarmd.common.engine_errors import engine_error_from_rpc, engine_status_sent
from swarmd.common.tls import open_channel

UNARY_TIMEOUT = 60.0      # seconds; every outbound unary call has a deadline
INFO_TIMEOUT = 10.0
ONE_BY_ONE_CONCURRENCY = 16     # InspectContainer calls in flight to an agent without InspectContainers


def _lacks_method(err: grpc.aio.AioRpcError) -> bool:
    """The agent does not know the RPC (an older agent), as against an engine's 501, which comes
    with the engine's status."""
    if err.code() != grpc.StatusCode.UNIMPLEMENTED:
        return False
    return not any(key == engine_errors.STATUS_KEY for key, _ in err.trailing_metadata() or ())


class EngineDocument(dict):
    """A JSON object from the engine: parsed, with the bytes it came as (`raw`), so that it can be
    served again without encoding it anew, and those bytes packed (`packed`) when the agent sent
    them packed."""

    __slots__ = ("raw", "packed")


def engine_document(raw: bytes, packed: bytes = b"") -> EngineDocument:
    """An inspect document as the agent sent it: parsed, its bytes kept."""
    doc = EngineDocument(json_parse.loads(raw))
    doc.raw, doc.packed = raw, packed
    return doc


def synced_documents(synced: agent_pb2.SyncNodeResponse) -> list[EngineDocument]:
    """The inspect documents of a SyncNode answer, in its order: as sent, or unpacked when the
    agent packed them (each keeps its packed bytes, which its record stores as they are). A packed
    document that does not unpack fails the sync, as a malformed answer does."""
    if not synced.packed_containers:
        return [engine_document(raw) for raw in synced.containers]
    try:
        return [engine_document(packed_documents.unpack_document(packed), packed)
                for packed in synced.packed_containers]
    except zlib.error:
        raise ApiError(502, "the agent sent a packed inspect document that does not unpack") from None


@dataclass(frozen=True)
class ReadBack:
    """The container as the agent read it right after a change (None: it could not) and when the
    engine was asked (engine clock, 0 if unknown)."""

    doc: EngineDocument | None
    read_at: int


async def _ready(read: ReadBack) -> ReadBack:
    return read


async def _read_back_of(call) -> ReadBack:
    """The second message of a streamed change: the read-back (doc None when the agent could not
    read the container, or the call failed after the change was made)."""
    try:
        message = await call.read()
    except grpc.aio.AioRpcError:
        return ReadBack(None, 0)
    if message is grpc.aio.EOF or not message.json:
        return ReadBack(None, 0)
    return ReadBack(engine_document(message.json), message.read_at_ns)


_STREAM_LOST = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
                          grpc.StatusCode.CANCELLED})


class _NoChangeStream(Exception):
    """The agent predates the Changes stream: the change is asked with the streamed calls."""


@dataclass
class _Change:
    """A change asked on a ChangeStream, until its last message: the engine's answer, then the
    read-back (None: the agent could not read the container, or no read-back follows)."""

    call: object                       # the stream it was asked on
    answer: asyncio.Future
    read_back: asyncio.Future
    answered: bool = False


class ChangeStream:
    """The manager's side of one agent's Changes stream (agent.proto): opened with the second change
    asked within IDLE_CLOSE seconds (`wanted`), one message each way per change instead of a new
    call (half the time each way here), half-closed once it has been idle for IDLE_CLOSE seconds so
    that a large fleet holds no stream it does not use. A stream that breaks fails the changes
    waiting on it as a failed call would, and the next change opens a new one."""

    IDLE_CLOSE = 30.0

    def __init__(self, client: AgentClient):
        self.client = client
        self._call = None
        self._seq = 0
        self._changes: dict[int, _Change] = {}
        self._writing = asyncio.Lock()         # one message written at a time on a call
        self._idle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()     # its readers and half-closes, until they end
        self._last_wanted = -math.inf              # monotonic time of the last change `wanted` saw

    def wanted(self) -> bool:
        """Whether the change being asked should go on the stream: it is open, or another change
        was asked of this node within IDLE_CLOSE seconds. A node changed once (one create of many
        spread over a large fleet lands on each node once) costs less over one streamed call than
        over a stream opened, written, read and half-closed for that one change."""
        now = time.monotonic()
        recent, self._last_wanted = now - self._last_wanted < self.IDLE_CLOSE, now
        return recent or (self._call is not None and not self._call.done())

    async def ask(self, **change) -> tuple[object, Awaitable[ReadBack]]:
        """(the engine's answer message, an awaitable of the read-back) of one change: `create` or
        `action`, a CreateContainerRequest or a ContainerActionRequest. ApiError as the streamed
        calls raise it; _NoChangeStream when the agent predates the stream."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self._seq += 1
        seq = self._seq
        pending = await self._send(seq, agent_pb2.ChangeRequest(seq=seq, **change))
        try:
            answer = await asyncio.wait_for(pending.answer, UNARY_TIMEOUT)
        except asyncio.TimeoutError:
            self._forget(seq)
            raise self.client.engine_error(504, "Deadline Exceeded") from None
        except BaseException:
            if not pending.answered:
                self._forget(seq)
            raise
        return answer, pending.read_back

    async def _send(self, seq: int, request) -> _Change:
        """Writes the change on the open stream (opened if need be) and returns it pending. A stream
        found ended before the change went out is replaced once: the change was not sent."""
        loop = asyncio.get_running_loop()
        for attempt in (0, 1):
            if self._call is None or self._call.done():
                self._open()
            call = self._call
            pending = self._changes[seq] = _Change(call, loop.create_future(), loop.create_future())
            try:
                async with self._writing:
                    await call.write(request)
                return pending
            except asyncio.InvalidStateError:
                self._changes.pop(seq, None)
                if self._call is call:
                    self._call = None
            except grpc.aio.AioRpcError as err:   # the stream broke: its reader fails the rest
                self._forget(seq)
                raise self._failure(err) from None
            except BaseException:
                self._forget(seq)
                raise
        raise self.client.engine_error(503, "its change stream ends as soon as it is opened")

    def _forget(self, seq: int) -> None:
        change = self._changes.pop(seq, None)
        if change is not None and not change.read_back.done():
            change.read_back.set_result(ReadBack(None, 0))
        self._idle_soon()

    def _open(self) -> None:
        self._call = call = self.client.stub.Changes()
        reader = asyncio.ensure_future(self._read(call))
        self._tasks.add(reader)
        reader.add_done_callback(self._tasks.discard)

    async def _read(self, call) -> None:
        error: Exception | None = None
        try:
            while (message := await call.read()) is not grpc.aio.EOF:
                self._take(message)
        except grpc.aio.AioRpcError as err:
            error = self._failure(err)
        except asyncio.CancelledError:
            error = ApiError(503, f"node {self.client.node_name} ({self.client.addr}) is unreachable: "
                                  "the manager closed its change stream")
        finally:
            if self._call is call:
                self._call = None
            self._fail(call, error or ApiError(502, f"node {self.client.node_name} ({self.client.addr}) "
                                                    "ended its change stream"))

    def _failure(self, err: grpc.aio.AioRpcError) -> Exception:
        """What a change is told when its stream failed (found by the write or by the reader)."""
        if err.code() == grpc.StatusCode.UNIMPLEMENTED and not engine_status_sent(err):
            return _NoChangeStream()
        return self._broken(err)

    def _broken(self, err: grpc.aio.AioRpcError) -> ApiError:
        """A stream that failed without the agent's word (its agent or the connection went: gRPC
        says INTERNAL, UNKNOWN or CANCELLED as often as UNAVAILABLE) is an unreachable node."""
        if engine_status_sent(err) or err.code() not in _STREAM_LOST:
            return self.client.rpc_error(err)
        return self.client.engine_error(503, f"agent unavailable: {err.details() or err.code().name.lower()}")

    def _take(self, message) -> None:
        change = self._changes.get(message.seq)
        if change is None:
            return                             # given up on (deadline, client gone)
        kind = message.WhichOneof("answer")
        if kind == "error":
            if not change.answer.done():
                change.answer.set_exception(self.client.engine_error(message.error.status, message.error.message))
            self._forget(message.seq)
            return
        body = message.created if kind == "created" else message.acted
        if not change.answered:
            change.answered = True
            if not change.answer.done():
                change.answer.set_result(body)
            if message.last:
                self._forget(message.seq)
            return
        if not change.read_back.done():
            change.read_back.set_result(ReadBack(engine_document(body.json) if body.json else None, body.read_at_ns))
        self._forget(message.seq)

    def _fail(self, call, error: Exception) -> None:
        for seq, change in list(self._changes.items()):
            if change.call is not call:
                continue
            if not change.answer.done():
                change.answer.set_exception(error)
            self._forget(seq)

    def _idle_soon(self) -> None:
        if not self._changes and self._call is not None and self._idle is None:
            self._idle = asyncio.get_running_loop().call_later(self.IDLE_CLOSE, self._close_idle)

    def _close_idle(self) -> None:
        self._idle = None
        call = self._call
        if self._changes or call is None:
            return
        self._call = None                      # the next change opens a new stream
        half_close = asyncio.ensure_future(call.done_writing())
        self._tasks.add(half_close)
        half_close.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._call is not None:
            self._call.cancel()
            self._call = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))


class AgentClient:
    """One channel to one agent. Methods raise ApiError carrying the engine's status and text."""

    def __init__(self, addr: str, node_name: str = "", tls=None):
        self.addr = addr
        self.node_name = node_name or addr
        self.change_stream = True              # False once the agent answered that it lacks the Changes stream
        self.streamed_changes = True           # False once the agent answered that it lacks them
        self.node_sync = True                  # False once the agent answered that it lacks SyncNode
        self.channel = open_channel(           # mutual TLS when `tls` (swarmd.common.tls.TLSConfig) is given
            addr, tls,
            options=agent_channel_options(),   # keepalive: why a ping a minute, in manager.agent_channel
        )
        self.stub = agent_pb2_grpc.AgentStub(self.channel)
        self.changes = ChangeStream(self)

    async def close(self) -> None:
        await self.changes.close()
        await self.channel.close()

    def rpc_error(self, err: grpc.aio.AioRpcError) -> ApiError:
        """A failed call as the Docker client is told of it (the engine's status and words)."""
        return self.engine_error(*engine_error_from_rpc(err))

    def engine_error(self, status: int, message: str) -> ApiError:
        if status >= 500:
            AGENT_RPC_ERRORS.labels(self.node_name, str(status)).inc()
        if status in (503, 504):
            message = f"node {self.node_name} ({self.addr}) is unreachable: {message}"
        return ApiError(status, message)

    async def engine_info(self) -> agent_pb2.EngineInfo:
        try:
            return await self.stub.GetEngineInfo(agent_pb2.GetEngineInfoRequest(), timeout=INFO_TIMEOUT)
        except grpc.aio.AioRpcError as err:
            raise self.rpc_error(err) from None

    async def sync_node(self) -> agent_pb2.SyncNodeResponse | None:
        """The node's engine facts, every container's inspect document and its images, in one call
        (SyncNode); None from an agent that predates it, or for a node whose answer would exceed a
        message (tens of thousands of containers): the caller makes the four calls instead, the
        documents in batches."""
        if self.node_sync:
            try:
                return await self.stub.SyncNode(agent_pb2.SyncNodeRequest(packing=packed_documents.DICTIONARY_ID),
                                                timeout=UNARY_TIMEOUT)
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and not engine_status_sent(err):
                    return None
                if not _lacks_method(err):
                    raise self.rpc_error(err) from None
            self.node_sync = False
        return None

    async def _unary(self, method, request, timeout: float, clock_key: str):
        """(response, the engine-clock time the agent sent under `clock_key`, or 0)."""
        call = method(request, timeout=timeout)
        try:
            resp = await call
            metadata = await call.trailing_metadata()
        except grpc.aio.AioRpcError as err:
            raise self.rpc_error(err) from None
        return resp, engine_clock.time_from(metadata, clock_key)

    async def create_container(self, name: str, config: dict) -> dict:
        return (await self.create_container_at(name, config))[0]

    async def create_container_at(self, name: str, config: dict) -> tuple[dict, int]:
        """The engine's create answer and when the engine had answered (engine clock, 0 if unknown)."""
        resp, done_at = await self._unary(
            self.stub.CreateContainer,
            agent_pb2.CreateContainerRequest(name=name or "", config_json=json_parse.dumps(config)),
            UNARY_TIMEOUT, engine_clock.DONE_AT)
        return {"Id": resp.id, "Warnings": list(resp.warnings)}, done_at

    async def create_and_read(self, name: str, config: dict) -> tuple[dict, int, ReadBack]:
        """create_container_at, answered with the created container's document (read-back)."""
        resp, done_at = await self._unary(
            self.stub.CreateContainer,
            agent_pb2.CreateContainerRequest(name=name or "", config_json=json_parse.dumps(config), read_back=True),
            UNARY_TIMEOUT, engine_clock.DONE_AT)
        read = ReadBack(engine_document(resp.json) if resp.json else None, resp.read_at_ns)
        return {"Id": resp.id, "Warnings": list(resp.warnings)}, done_at, read

    async def action_and_read(self, container_id: str, action: str,
                              params: dict[str, str] | None = None) -> tuple[int, int, ReadBack]:
        """container_action_at, answered with the container's document after it (read-back)."""
        resp, done_at = await self._unary(
            self.stub.ContainerAction,
            agent_pb2.ContainerActionRequest(id=container_id, action=ACTIONS[action].wire, params=params or {},
                                             read_back=True),
            UNARY_TIMEOUT, engine_clock.DONE_AT)
        return resp.status or 204, done_at, ReadBack(engine_document(resp.json) if resp.json else None,
                                                      resp.read_at_ns)

    async def create_then_read(self, name: str, config: dict) -> tuple[dict, int, Awaitable[ReadBack]]:
        """create_and_read in two steps: the engine's answer and when it was done, as soon as the
        agent has them, and an awaitable of the read-back that follows (which must be awaited).
        An agent without the streamed changes answers both at once."""
        request = agent_pb2.CreateContainerRequest(name=name or "", config_json=json_parse.dumps(config),
                                                   read_back=True)
        changed = await self._changed("create", request, self.stub.CreateContainerStreamed)
        if changed is not None:
            first, read_back = changed
            return {"Id": first.id, "Warnings": list(first.warnings)}, first.done_at_ns, read_back
        result, done_at, read = await self.create_and_read(name, config)
        return result, done_at, _ready(read)

    async def action_then_read(self, container_id: str, action: str,
                               params: dict[str, str] | None = None) -> tuple[int, int, Awaitable[ReadBack]]:
        """action_and_read in two steps, as create_then_read."""
        request = agent_pb2.ContainerActionRequest(id=container_id, action=ACTIONS[action].wire, params=params or {},
                                                   read_back=True)
        changed = await self._changed("action", request, self.stub.ContainerActionStreamed)
        if changed is not None:
            first, read_back = changed
            return first.status or 204, first.done_at_ns, read_back
        status, done_at, read = await self.action_and_read(container_id, action, params)
        return status, done_at, _ready(read)

    async def _changed(self, kind: str, request, streamed_call) -> tuple[object, Awaitable[ReadBack]] | None:
        """A change's first message and an awaitable of its read-back: on the Changes stream when
        `ChangeStream.wanted` (or the agent lacks the streamed calls), else with `streamed_call`;
        None when the agent has neither (the caller asks the unary call).
        Each kind of call an agent lacks is not asked of it again."""
        if self.change_stream and (self.changes.wanted() or not self.streamed_changes):
            try:
                return await self.changes.ask(**{kind: request})
            except _NoChangeStream:
                self.change_stream = False
        if self.streamed_changes:
            call = streamed_call(request, timeout=UNARY_TIMEOUT)
            first = await self._first_of_streamed(call)
            if first is not None:
                return first, _read_back_of(call)
        return None

    async def _first_of_streamed(self, call):
        """The first message of a streamed change; None when the agent predates the streamed calls
        (they are not asked of it again)."""
        try:
            first = await call.read()
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.UNIMPLEMENTED and not engine_status_sent(err):
                self.streamed_changes = False
                return None
            raise self.rpc_error(err) from None
        if first is grpc.aio.EOF:
            raise ApiError(502, f"node {self.node_name} ({self.addr}) ended a change without an answer")
        return first

    async def list_containers(self, all: bool = True, filters: dict | None = None) -> list[dict]:
        try:
            resp = await self.stub.ListContainers(
                agent_pb2.ListContainersRequest(all=all, filters_json=json.dumps(filters).encode() if filters else b""),
                timeout=UNARY_TIMEOUT,
            )
        except grpc.aio.AioRpcError as err:
            raise self.rpc_error(err) from None
        return json_parse.loads(resp.containers_json or b"[]")

    async def inspect_container(self, container_id: str) -> dict:
        return (await self.inspect_container_at(container_id))[0]

    async def inspect_container_at(self, container_id: str, since: int = 0) -> tuple[dict, int]:
        """The inspect document and when the engine was asked for it (engine clock, 0 if unknown):
        the document shows every change the engine made before that time (and after `since`)."""
        resp, read_at = await self._unary(
            self.stub.InspectContainer, agent_pb2.InspectContainerRequest(id=container_id, since_ns=since),
            UNARY_TIMEOUT, engine_clock.READ_AT)
        return engine_document(resp.json), read_at

    async def inspect_containers(self, container_ids: list[str]) -> tuple[list[bytes], int]:
        """The inspect documents (JSON bytes, as the engine sent them) of those of the containers
        the engine still has, in the order asked, in one call; and when the agent began asking
        (engine clock, 0 if unknown): every document shows each change made before that time."""
        call = self.stub.InspectContainers(agent_pb2.InspectContainersRequest(ids=container_ids),
                                           timeout=UNARY_TIMEOUT)
        try:
            resp = await call
            metadata = await call.trailing_metadata()
        except grpc.aio.AioRpcError as err:
            if not _lacks_method(err):
                raise self.rpc_error(err) from None
            return await self._inspect_one_by_one(container_ids)
        return list(resp.json), engine_clock.time_from(metadata, engine_clock.READ_AT)

    async def _inspect_one_by_one(self, container_ids: list[str]) -> tuple[list[bytes], int]:
        """inspect_containers from an agent that predates it: one InspectContainer per container."""
        sem = asyncio.Semaphore(ONE_BY_ONE_CONCURRENCY)

        async def read(container_id: str) -> tuple[bytes, int] | None:
            async with sem:
                try:
                    resp, read_at = await self._unary(
                        self.stub.InspectContainer, agent_pb2.InspectContainerRequest(id=container_id),
                        UNARY_TIMEOUT, engine_clock.READ_AT)
                except ApiError as err:
                    if err.status == 404:
                        return None
                    raise
            return resp.json, read_at

        found = [r for r in await asyncio.gather(*(read(i) for i in container_ids)) if r is not None]
        # the earliest time: each document was read after it (0, unknown, if any is)
        return [doc for doc, _ in found], min((t for _, t in found), default=0)

    async def container_action(self, container_id: str, action: str, params: dict[str, str] | None = None) -> int:
        return (await self.container_action_at(container_id, action, params))[0]

    async def container_action_at(self, container_id: str, action: str,
                                  params: dict[str, str] | None = None) -> tuple[int, int]:
        """The engine's status and when the engine had answered (engine clock, 0 if unknown)."""
        resp, done_at = await self._unary(
            self.stub.ContainerAction,
            agent_pb2.ContainerActionRequest(id=container_id, action=ACTIONS[action].wire, params=params or {}),
            UNARY_TIMEOUT, engine_clock.DONE_AT)
        return resp.status or 204, done_at

    async def engine_call(self, method: str, path: str, query: str = "", body: bytes = b"",
                          headers: dict[str, str] | None = None) -> agent_pb2.EngineResponse:
        req = agent_pb2.EngineRequest(
            method=method, path=path, query=query, body=body,
            headers=[agent_pb2.Header(name=k, value=v) for k, v in (headers or {}).items()],
        )
        try:
            return await self.stub.EngineCall(req, timeout=UNARY_TIMEOUT)
        except grpc.aio.AioRpcError as err:
            raise self.rpc_error(err) from None

    def engine_stream(self) -> grpc.aio.StreamStreamCall:
        """A bidi EngineStream call; the caller writes `open` first (see manager.api.relay)."""
        return self.stub.EngineStream()

    async def events(self, since_unix_nano: int = 0) -> AsyncIterator[dict]:
        call = self.stub.Events(agent_pb2.EventsRequest(since_unix_nano=since_unix_nano))
        try:
            async for ev in call:
                yield json_parse.loads(ev.json)
        finally:
            call.cancel()
