"""Relays one Engine API call to a node's agent and the answer back to the HTTP client.

Unary calls go through `EngineCall`; streaming and hijacked calls through `EngineStream`, whose
frames are copied both ways as they arrive (stdin to the container, output to the client).
"""
from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import AsyncIterator

import grpc

from swarmd.manager.agents import AgentClient
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.httpd.request import Request
from swarmd.manager.httpd.response import ClientGone, Response, json_response
from swarmd.proto.swarm.v1 import agent_pb2
from swarmd.common import logs
from swarmd.common.engine_errors import engine_error_from_rpc
from swarmd.common.http_upgrade import asks_for_upgrade

log = logs.get("manager.relay")

# request headers worth passing to the engine
_FORWARD_HEADERS = ("content-type", "x-registry-auth", "x-registry-config")


def _header(headers, name: str, default: str = "") -> str:
    lname = name.lower()
    for h in headers:
        if h.name.lower() == lname:
            return h.value
    return default


def engine_request(req: Request, path: str, query: str | None = None, body: bytes | None = None,
                   hijack: bool = False) -> agent_pb2.EngineRequest:
    if query is None:
        query = urllib.parse.urlencode([(k, v) for k, vs in req.query.items() for v in vs])
    headers = [agent_pb2.Header(name=h, value=req.headers.get(h)) for h in _FORWARD_HEADERS if req.headers.get(h)]
    if hijack:
        headers += [agent_pb2.Header(name="Connection", value="Upgrade"), agent_pb2.Header(name="Upgrade", value="tcp")]
    return agent_pb2.EngineRequest(method=req.method, path=path, query=query,
                                   body=req.body if body is None else body, headers=headers)


def quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def wants_hijack(req: Request) -> bool:
    """Whether the client asks to take the connection over (attach, exec start): `Connection: Upgrade`
    or an `Upgrade:` header, either one. The docker CLI and SDK send both. dockerd hijacks attach
    whatever the headers and answers 101 when `Upgrade:` is there, 200 otherwise, as this manager's
    server does; so a client sending one of the two gets a two-way stream, from the primary
    directly or through a replica (manager.forwarding asks the same question)."""
    return asks_for_upgrade(req.headers.items())


async def unary(req: Request, client: AgentClient, path: str, query: str | None = None,
                body: bytes | None = None) -> Response:
    er = engine_request(req, path, query, body)
    resp = await client.engine_call(er.method, er.path, er.query, er.body, {h.name: h.value for h in er.headers})
    ctype = _header(resp.headers, "Content-Type", "application/json" if resp.body else "")
    return Response(resp.status, resp.body, content_type=ctype or None, headers=_passed_headers(resp.headers))


_NOT_PASSED = ("content-type", "content-length", "date", "server", "api-version", "ostype", "docker-experimental",
               "transfer-encoding", "connection", "upgrade")


def _passed_headers(headers) -> dict[str, str]:
    """Engine response headers worth giving the client (e.g. X-Docker-Container-Path-Stat)."""
    return {h.name: h.value for h in headers if h.name.lower() not in _NOT_PASSED}


async def _open_stream(call, req: Request, client: AgentClient, path: str, query: str | None, body: bytes | None,
                       hijack: bool):
    """Sends the `open` frame and returns the agent's `head` (the engine's status and headers)."""
    await call.write(agent_pb2.StreamFrame(open=engine_request(req, path, query, body, hijack)))
    first = await call.read()
    if first is grpc.aio.EOF or first.WhichOneof("frame") != "head":
        raise ApiError(502, f"node {client.node_name} ended the stream without an answer")
    return first.head


async def _data_frames(call, path: str = "") -> AsyncIterator[bytes]:
    """The body bytes of an engine stream, until its `end` frame (an error there is logged)."""
    while (frame := await call.read()) is not grpc.aio.EOF:
        kind = frame.WhichOneof("frame")
        if kind == "data":
            yield frame.data
        elif kind == "end":
            if frame.end.error:
                log.warning("engine stream ended with error", path=path, error=frame.end.error)
            return


async def stream(req: Request, client: AgentClient, path: str, query: str | None = None,
                 body: bytes | None = None, hijack: bool | None = None) -> Response | None:
    """Streams (or hijacks, when the client asked to upgrade) an engine call through the agent."""
    if hijack is None:
        hijack = wants_hijack(req)
    call = client.engine_stream()
    try:
        head = await _open_stream(call, req, client, path, query, body, hijack)
        ctype = _header(head.headers, "Content-Type", "application/json")
        if head.status == 101:
            await _pump_hijack(req, call, ctype)
            return None
        if head.status >= 300:
            return Response(head.status, b"".join([d async for d in _data_frames(call, path)]), content_type=ctype)
        await _pump_stream(req, call, head.status, ctype, _passed_headers(head.headers))
        return None
    except grpc.aio.AioRpcError as err:
        status, message = engine_error_from_rpc(err)
        raise ApiError(status, f"node {client.node_name}: {message}") from None
    finally:
        call.cancel()


async def _pump_stream(req: Request, call, status: int, ctype: str, headers: dict[str, str]) -> None:
    writer = await req.start_stream(status, ctype, headers)
    try:
        async for data in _data_frames(call, req.path):
            await writer.write(data)
        await writer.close()
    except ClientGone:
        pass   # the client left: the finally in stream() cancels the agent side


async def _pump_hijack(req: Request, call, ctype: str) -> None:
    conn = await req.hijack(ctype)

    async def client_to_agent() -> None:
        while True:
            data = await conn.reader.read(65536)
            if not data:
                await call.write(agent_pb2.StreamFrame(close_write=True))
                return
            await call.write(agent_pb2.StreamFrame(data=data))

    upstream = asyncio.create_task(client_to_agent())
    try:
        while (frame := await call.read()) is not grpc.aio.EOF:
            kind = frame.WhichOneof("frame")
            if kind == "data":
                await conn.write(frame.data)
            elif kind == "end":
                break
    except (ClientGone, ConnectionError):
        pass
    finally:
        upstream.cancel()
        await asyncio.gather(upstream, return_exceptions=True)
        await conn.close()


async def json_lines(req: Request, client: AgentClient, path: str, query: str,
                     body: bytes = b"") -> AsyncIterator[dict]:
    """A streamed engine call read as newline-delimited JSON documents, as they arrive; `body` goes
    with the call (a build context, an imported tar), nothing by default.

    An engine error before the stream starts is raised as ApiError; one during the stream comes
    as the engine sends it, an `{"error": …}` document."""
    call = client.engine_stream()
    try:
        status = (await _open_stream(call, req, client, path, query, body, hijack=False)).status
        buf = b""
        body = []
        async for data in _data_frames(call, path):
            if status >= 300:
                body.append(data)
                continue
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                doc = _json_or_none(line)
                if doc is not None:
                    yield doc
        if status >= 300:
            doc = _json_or_none(b"".join(body)) or {}
            raise ApiError(status, doc.get("message") or f"node {client.node_name} answered {status}")
        doc = _json_or_none(buf)
        if doc is not None:
            yield doc
    except grpc.aio.AioRpcError as err:
        status, message = engine_error_from_rpc(err)
        raise ApiError(status, f"node {client.node_name}: {message}") from None
    finally:
        call.cancel()


def _json_or_none(line: bytes):
    line = line.strip()
    if not line:
        return None
    try:
        return json.loads(line)
    except ValueError:
        return None


async def prune_everywhere(req: Request, nodes, path: str, deleted_key: str, node_prefixed: bool = False,
                           after=None) -> Response:
    """A `…/prune` call run on every given node with the client's filters, the answers merged:
    deleted items (as `node/name` when `node_prefixed`) and reclaimed space summed. `after(view)`
    runs for each node that pruned (e.g. to re-read its images)."""
    answers = await asyncio.gather(*(unary(req, v.client, path) for v in nodes), return_exceptions=True)
    deleted, space, reported_space = [], 0, False
    for view, resp in zip(nodes, answers):
        if isinstance(resp, ApiError):
            continue                          # a node lost meanwhile prunes nothing
        if isinstance(resp, BaseException):
            raise resp
        if resp.status != 200:
            continue
        doc = json.loads(resp.body or b"{}")
        items = doc.get(deleted_key) or []
        deleted += [f"{view.name}/{i}" for i in items] if node_prefixed else items
        reported_space |= "SpaceReclaimed" in doc
        space += doc.get("SpaceReclaimed") or 0
        if after is not None:
            await after(view)
    out = {deleted_key: deleted}
    if reported_space or not nodes:           # networks free no space: the engine leaves it out
        out["SpaceReclaimed"] = space
    return json_response(out)
