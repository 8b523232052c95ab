"""Every route the web view serves, in one table, and their handlers (`async def handler(ctx, req)`).

Read-only: the page, its static files, the cluster summary (once, or pushed as server-sent events
whenever it changes, with the merged event stream's lines in between) and one container's details.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from swarmd.manager.api.context import ManagerContext
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.httpd.request import Request
from swarmd.manager.httpd.response import ClientGone, Response, json_response
from swarmd.manager.ui.facts import cluster_facts
from swarmd.manager.ui.summary import Query, event_line, inspect_summary, log_lines, summarize

Handler = Callable[..., Awaitable]

STATIC = Path(__file__).parent / "static"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}
PUSH_PERIOD = 0.5      # seconds between summary checks: a change is on the page well within 2 s
KEEPALIVE = 15.0       # seconds of silence after which a comment line keeps proxies from closing the stream
LOG_LINES = 50


def query_of(req: Request) -> Query:
    return Query(node=(req.arg("node") or "").strip(), label=(req.arg("label") or "").strip(),
                 name=(req.arg("name") or "").strip())


async def page(ctx: ManagerContext, req: Request) -> Response:
    return await static_file(ctx, req, name="index.html")


async def static_file(ctx: ManagerContext, req: Request, name: str | None = None) -> Response:
    """A file shipped in `static/`, by its bare name only (nothing outside that folder is reachable)."""
    name = name or req.params.get("name", "")
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise ApiError(404, "page not found")
    return Response(200, path.read_bytes(), CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
                    {"Cache-Control": "no-cache"})


async def summary(ctx: ManagerContext, req: Request) -> Response:
    return json_response(summarize(cluster_facts(ctx), query_of(req)))


def _sse(kind: str, data) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def stream(ctx: ManagerContext, req: Request):
    """Server-sent events: `summary` at once and whenever it changes, `event` per cluster event."""
    query = query_of(req)
    loop = asyncio.get_running_loop()
    queue = ctx.cluster.subscribe()
    try:
        writer = await req.start_stream(200, "text/event-stream", {"Cache-Control": "no-cache"})
        last, quiet_since = None, loop.time()
        while True:
            body = summarize(cluster_facts(ctx), query)
            if body != last:
                await writer.write(_sse("summary", body))
                last, quiet_since = body, loop.time()
            elif loop.time() - quiet_since > KEEPALIVE:
                await writer.write(b": keep-alive\n\n")
                quiet_since = loop.time()
            deadline = loop.time() + PUSH_PERIOD
            while (timeout := deadline - loop.time()) > 0:
                try:
                    ev = await asyncio.wait_for(queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                if ev is None:       # this reader fell behind and was dropped: the tail skips, the summary does not
                    queue = ctx.cluster.subscribe()
                    continue
                await writer.write(_sse("event", event_line(ev)))
    except ClientGone:
        pass
    finally:
        ctx.cluster.unsubscribe(queue)
    return None


async def container_detail(ctx: ManagerContext, req: Request) -> Response:
    """One container's inspect summary and its last log lines (an error in place of logs it cannot read)."""
    rec = ctx.cluster.find_container(req.params["id"])
    view = ctx.cluster.node_of(rec)
    out = {"inspect": inspect_summary(rec.doc, view.name), "logs": [], "logs_error": ""}
    if not view.healthy:
        out["logs_error"] = f"node {view.name} is {view.status.lower()}: its logs cannot be read now"
        return json_response(out)
    try:
        resp = await view.client.engine_call("GET", f"/containers/{rec.id}/logs",
                                             f"stdout=1&stderr=1&tail={LOG_LINES}")
    except ApiError as exc:
        out["logs_error"] = exc.message
        return json_response(out)
    if resp.status >= 400:
        out["logs_error"] = resp.body.decode(errors="replace").strip()
    else:
        out["logs"] = log_lines(resp.body, rec.tty, LOG_LINES)
    return json_response(out)


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/", page),
    ("GET", "/static/{name}", static_file),
    ("GET", "/api/summary", summary),
    ("GET", "/api/stream", stream),
    ("GET", "/api/containers/{id}", container_detail),
]
