"""`/containers/*`: placement on create, then every call addressed to the container's node."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from manager.api import relay
from manager.api.context import ManagerContext
from manager.container_records import ContainerRecord
from manager import container_filters
from manager.httpd.errors import ApiError
from manager.httpd.request import Request
from manager.httpd.response import JSON, Response, empty, json_response
from manager.placement import InvalidCreate, InvalidName, NameInUse, NoNodeFits, PlacementError, check_name
from swarmd import logs

log = logs.get("manager.api.containers")

_ACTIONS = {"start": (), "stop": ("t", "signal"), "kill": ("signal",), "restart": ("t", "signal"),
            "pause": (), "unpause": ()}
# each refusal of the placement as the HTTP status classic swarm answered it with
_PLACEMENT_STATUS = {InvalidName: 400, NameInUse: 409, InvalidCreate: 400, NoNodeFits: 500}


def _http_error(exc: PlacementError) -> ApiError:
    return ApiError(_PLACEMENT_STATUS[type(exc)], str(exc))


def _conflict(name: str, rec: ContainerRecord | None) -> ApiError:
    return _http_error(NameInUse(name, rec))


def _check_name(name: str) -> str:
    try:
        return check_name(name)
    except InvalidName as exc:
        raise _http_error(exc) from None


def register(router, ctx: ManagerContext) -> None:
    cluster = ctx.cluster

    def locate(req: Request) -> tuple[ContainerRecord, object]:
        rec = cluster.find_container(req.params["id"])
        return rec, cluster.node_of(rec)

    async def create(req: Request) -> Response:
        body = req.json(default=None)
        if not isinstance(body, dict):
            raise ApiError(400, "config cannot be empty in order to create a container")
        name = req.arg("name") or ""
        try:
            placed = await ctx.placement.create(name, body)
        except PlacementError as exc:
            raise _http_error(exc) from None
        log.info("container created", id=placed.id[:12], name=name.lstrip("/"), node=placed.node.name)
        return json_response(placed.result, 201)

    async def list_containers(req: Request) -> Response:
        show_all = req.flag("all")
        limit = req.int_arg("limit", -1)
        filters = req.filters()
        container_filters.validate(filters)
        now = datetime.now(timezone.utc)
        out = []
        for rec in cluster.containers():
            view = cluster.nodes.get(rec.node_id)
            down = view is not None and not view.healthy
            if down:
                holder = cluster.name_in_use(rec.name)
                if holder is not None and holder.node_id != rec.node_id:
                    continue     # rescheduled: the copy elsewhere is the container now
            if not show_all and not rec.state.get("Running") and "status" not in filters:
                continue
            summary = rec.summary(now)
            if down:             # as classic swarm showed containers of an unhealthy node
                summary["Status"] = "Host Down"
                summary["State"] = "unknown"
            if filters and not container_filters.matches(rec, summary, filters, cluster.find_container):
                continue
            out.append((summary, rec))
        out.sort(key=lambda pair: pair[0]["Created"], reverse=True)
        if limit and limit > 0:
            out = out[:limit]
        # each record encodes its static part once: a 30,000-container list is a join of cached bytes
        return Response(200, b"[" + b",".join(rec.summary_json(s) for s, rec in out) + b"]\n", JSON)

    async def inspect(req: Request) -> Response:
        rec, view = locate(req)
        node = view.node_document()
        if "Node" in rec.doc or not rec.doc:
            return json_response({**rec.doc, "Node": node})
        return Response(200, b"".join((cluster.document_json(rec), b',"Node":', json.dumps(node, separators=(",", ":")).encode(),
                                       b"}\n")), JSON)

    def action_handler(action: str):
        async def handler(req: Request) -> Response:
            rec, view = locate(req)
            params = {k: req.arg(k) for k in _ACTIONS[action] if req.arg(k) is not None}
            status, done_at = await view.client.container_action_at(rec.id, action, params)
            await cluster.refresh_container(view, rec.id, done_at)
            return empty(status)
        return handler

    async def remove(req: Request) -> Response:
        rec, view = locate(req)
        params = {k: "1" if req.flag(k) else "0" for k in ("force", "v", "link")}
        status = await view.client.container_action(rec.id, "remove", params)
        cluster._forget(view, rec.id)
        return empty(status)

    async def rename(req: Request) -> Response:
        rec, view = locate(req)
        new = req.arg("name")
        if not new:
            raise ApiError(400, "new name cannot be blank")
        new = _check_name(new)
        other = cluster.name_in_use(new)
        if (other and other.id != rec.id) or new in ctx.pending_names:
            raise _conflict(new, other)
        resp = await relay.unary(req, view.client, f"/containers/{rec.id}/rename")
        await cluster.refresh_container(view, rec.id)
        return resp

    def forward_unary(suffix: str):
        async def handler(req: Request) -> Response:
            rec, view = locate(req)
            return await relay.unary(req, view.client, f"/containers/{rec.id}{suffix}")
        return handler

    def forward_stream(suffix: str):
        async def handler(req: Request):
            rec, view = locate(req)
            return await relay.stream(req, view.client, f"/containers/{rec.id}{suffix}")
        return handler

    async def stats(req: Request):
        rec, view = locate(req)
        if req.flag("stream", True):
            return await relay.stream(req, view.client, f"/containers/{rec.id}/stats")
        return await relay.unary(req, view.client, f"/containers/{rec.id}/stats")

    async def exec_create(req: Request) -> Response:
        rec, view = locate(req)
        resp = await relay.unary(req, view.client, f"/containers/{rec.id}/exec")
        if resp.status == 201:
            cluster.execs[json.loads(resp.body)["Id"]] = view.id
        return resp

    async def update(req: Request) -> Response:
        rec, view = locate(req)
        resp = await relay.unary(req, view.client, f"/containers/{rec.id}/update")
        await cluster.refresh_container(view, rec.id)
        return resp

    async def prune(req: Request) -> Response:
        return await relay.prune_everywhere(req, cluster.healthy_nodes(), "/containers/prune", "ContainersDeleted")

    router.add("POST", "/containers/create", create)
    router.add("GET", "/containers/json", list_containers)
    router.add("POST", "/containers/prune", prune)
    router.add("GET", "/containers/{id:path}/json", inspect)
    for action in _ACTIONS:
        router.add("POST", f"/containers/{{id:path}}/{action}", action_handler(action))
    router.add("DELETE", "/containers/{id:path}", remove)
    router.add("POST", "/containers/{id:path}/rename", rename)
    router.add("POST", "/containers/{id:path}/update", update)
    router.add("POST", "/containers/{id:path}/exec", exec_create)
    router.add("GET", "/containers/{id:path}/stats", stats)
    for suffix in ("/top", "/changes"):
        router.add("GET", f"/containers/{{id:path}}{suffix}", forward_unary(suffix))
    router.add("POST", "/containers/{id:path}/resize", forward_unary("/resize"))
    router.add("HEAD", "/containers/{id:path}/archive", forward_unary("/archive"))
    router.add("PUT", "/containers/{id:path}/archive", forward_unary("/archive"))
    router.add("GET", "/containers/{id:path}/archive", forward_stream("/archive"))
    router.add("GET", "/containers/{id:path}/export", forward_stream("/export"))
    router.add("GET", "/containers/{id:path}/logs", forward_stream("/logs"))
    router.add("POST", "/containers/{id:path}/attach", forward_stream("/attach"))
    router.add("POST", "/containers/{id:path}/wait", forward_stream("/wait"))
    router.add("GET", "/containers/{id:path}/attach/ws", _unsupported("attach over websocket"))


def _unsupported(what: str):
    async def handler(req: Request) -> Response:
        raise ApiError(501, f"{what} is not supported by swarmd")
    return handler

