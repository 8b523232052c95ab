"""`/containers/*` handlers: placement on create, then every call addressed to the container's node.

Each handler takes the manager context and the request; `manager.api.routes` names the path of each."""
from __future__ import annotations

import json
import operator
from datetime import datetime, timezone

from swarmd.manager.api import relay
from swarmd.manager.api.context import ManagerContext
from swarmd.manager.api.lookups import (container_and_node, on_container_node, refuse_hex_image,
                                        settled_container_and_node)
from swarmd.manager.container_records import ContainerRecord, listing_json
from swarmd.manager import container_filters
from swarmd.manager.container_actions import ACTIONS
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.httpd.request import Request
from swarmd.manager.httpd.response import JSON, Response, empty, json_response
from swarmd.manager.placement import InvalidCreate, InvalidName, NameInUse, NoNodeFits, PlacementError, check_name
from swarmd.common import logs
from swarmd.common.stage_times import stages

log = logs.get("manager.api.containers")


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


async def create_container(ctx: ManagerContext, req: Request) -> Response:
    clock = stages("create", req.received_ns)
    clock.mark("request")           # from the head read: the body, the route, the handler's start
    body = req.json(default=None)
    if not isinstance(body, dict):
        raise ApiError(400, "config cannot be empty in order to create a container")
    name = req.arg("name") or ""
    refuse_hex_image(ctx.cluster, body.get("Image"))
    clock.mark("body")
    try:
        placed = await ctx.placement.create(name, body, answer_first=True)   # reads wait for its record
    except PlacementError as exc:
        raise _http_error(exc) from None
    clock.mark("placement")
    log.info("container created", id=placed.id[:12], name=name.lstrip("/"), node=placed.node.name)
    resp = json_response(placed.result, 201)
    clock.mark("answer")
    clock.done(log)
    return resp


async def list_containers(ctx: ManagerContext, req: Request) -> Response:
    cluster = ctx.cluster
    limit = req.int_arg("limit", -1)
    show_all = req.flag("all") or limit > 0        # as the engine: `ps -n N` / `ps -l` list every state
    filters = req.filters()
    container_filters.validate(filters)
    now = datetime.now(timezone.utc)
    by_status = "status" in filters
    listed: list[ContainerRecord] = []
    summaries: dict[ContainerRecord, object] = {}  # entries whose summary was read or overridden
    for view in list(cluster.nodes.values()):
        down = not view.healthy
        if not down and not filters and show_all:  # `docker ps -a`: every record, encoded straight
            listed.extend(view.containers.values())
            continue
        for rec in view.containers.values():
            if down:
                holder = cluster.name_in_use(rec.name)
                if holder is not None and holder.node_id != rec.node_id:
                    continue     # rescheduled: the copy elsewhere is the container now
            if not show_all and not by_status and not rec.state.get("Running"):
                continue
            if not down and not filters:
                listed.append(rec)
                continue
            summary = rec.summary(now)
            if down:             # as classic swarm showed containers of an unhealthy node
                summary["Status"] = "Host Down"
                summary["State"] = "unknown"
            if filters and not container_filters.matches(rec, summary, filters, cluster.find_container):
                continue
            listed.append(rec)
            summaries[rec] = summary
    # newest first to the engine's precision (`Created` is whole seconds): `ps -l` right after two creates
    listed.sort(key=_LISTING_KEY, reverse=True)
    if limit and limit > 0:
        listed = listed[:limit]
    # each record encodes its static part once: a 150,000-container list is a join of cached bytes
    return Response(200, listing_json(listed, now, summaries), JSON)


_LISTING_KEY = operator.attrgetter("listing_key")


@on_container_node
async def inspect_container(ctx: ManagerContext, req: Request) -> Response:
    rec, view = container_and_node(ctx.cluster, req.params["id"])
    node = view.node_document()
    if "Node" in rec.doc or not rec.doc:
        return json_response({**rec.doc, "Node": node})
    return Response(200, b"".join((ctx.cluster.document_json(rec), b',"Node":',
                                   json.dumps(node, separators=(",", ":")).encode(), b"}\n")), JSON)


@on_container_node
async def container_action(ctx: ManagerContext, req: Request, action: str) -> Response:
    """start, stop, kill, restart, pause, unpause: the engine's answer; the record shows it to every
    read after (reads wait for the agent's read-back, which follows on the same call)."""
    clock = stages(action, req.received_ns)
    clock.mark("request")
    rec, view = await settled_container_and_node(ctx.cluster, req.params["id"])
    params = {k: req.arg(k) for k in ACTIONS[action].params if req.arg(k) is not None}
    clock.mark("lookup")
    with view.change_asked():
        status, done_at, read_back = await view.client.action_then_read(rec.id, action, params)
        clock.mark("rpc_action")
        if not rec.reschedules:
            ctx.cluster.store_read_back_later(view, rec.id, done_at, read_back)
    if not rec.reschedules:
        clock.done(log)
        return empty(status)
    rec = await ctx.cluster.store_read_back(view, rec.id, done_at, read_back)
    clock.mark("store")
    # a started or stopped container is recreated running or not: its intent record says which,
    # durable before the client hears of it
    await ctx.cluster.keep_container_intent(rec)
    clock.mark("intent")
    clock.done(log)
    return empty(status)


@on_container_node
async def remove_container(ctx: ManagerContext, req: Request) -> Response:
    rec, view = container_and_node(ctx.cluster, req.params["id"])
    params = {k: "1" if req.flag(k) else "0" for k in ACTIONS["remove"].params}
    status = await view.client.container_action(rec.id, "remove", params)
    ctx.cluster.forget(view, rec.id)
    await ctx.cluster.drop_container_intent(rec)
    return empty(status)


@on_container_node
async def rename_container(ctx: ManagerContext, req: Request) -> Response:
    cluster = ctx.cluster
    rec, view = container_and_node(cluster, req.params["id"])
    new = req.arg("name")
    if not new:
        raise ApiError(400, "new name cannot be blank")
    new = _check_name(new)
    other = cluster.name_in_use(new)
    if (other and other.id != rec.id) or ctx.placement.is_reserved(new):
        raise _conflict(new, other)
    resp = await relay.unary(req, view.client, f"/containers/{rec.id}/rename")
    await cluster.refresh_container(view, rec.id)
    return resp


@on_container_node
async def update_container(ctx: ManagerContext, req: Request) -> Response:
    rec, view = container_and_node(ctx.cluster, req.params["id"])
    resp = await relay.unary(req, view.client, f"/containers/{rec.id}/update")
    await ctx.cluster.refresh_container(view, rec.id)
    return resp


@on_container_node
async def create_exec(ctx: ManagerContext, req: Request) -> Response:
    """The exec instance is remembered on the container's node, where its later calls go."""
    rec, view = container_and_node(ctx.cluster, req.params["id"])
    resp = await relay.unary(req, view.client, f"/containers/{rec.id}/exec")
    if resp.status == 201:
        ctx.cluster.execs[json.loads(resp.body)["Id"]] = view.id
    return resp


@on_container_node
async def container_stats(ctx: ManagerContext, req: Request):
    rec, view = container_and_node(ctx.cluster, req.params["id"])
    if req.flag("stream", True):
        return await relay.stream(req, view.client, f"/containers/{rec.id}/stats")
    return await relay.unary(req, view.client, f"/containers/{rec.id}/stats")


@on_container_node
async def relay_to_container(ctx: ManagerContext, req: Request, suffix: str) -> Response:
    """A call answered in one piece by the container's engine (`suffix` after its path)."""
    rec, view = container_and_node(ctx.cluster, req.params["id"])
    return await relay.unary(req, view.client, f"/containers/{rec.id}{suffix}")


@on_container_node
async def stream_from_container(ctx: ManagerContext, req: Request, suffix: str):
    """A call the container's engine answers as a stream, or hijacks when the client asked to."""
    rec, view = container_and_node(ctx.cluster, req.params["id"])
    return await relay.stream(req, view.client, f"/containers/{rec.id}{suffix}")


async def prune_containers(ctx: ManagerContext, req: Request) -> Response:
    return await relay.prune_everywhere(req, ctx.cluster.healthy_nodes(), "/containers/prune", "ContainersDeleted")


async def attach_websocket(ctx: ManagerContext, req: Request) -> Response:
    raise ApiError(501, "attach over websocket is not supported by swarmd")
