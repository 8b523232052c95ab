"""`/networks/*` and `/volumes/*`: node-local objects, named `node/name` across the cluster.

A plain name in create means every healthy node (compose's project network must exist wherever
its containers land); `node/name` means that node only. Lookups accept an ID, a `node/name`, or a
plain name (the first node holding it; all of them for removal).

Each handler takes the manager context and the request; `manager.api.routes` names the path of each.
"""
from __future__ import annotations

import asyncio
import json
import urllib.parse

from swarmd.manager.api import relay
from swarmd.manager.api.context import ManagerContext
from swarmd.manager.api.lookups import container_and_node, healthy_nodes
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.httpd.request import Request
from swarmd.manager.httpd.response import Response, empty, json_response

# engine-defined networks exist on every node under the same names
_PREDEFINED = {"bridge", "host", "none"}


class _NodeObjects:
    """List/create/inspect/remove for one kind of node-local object (networks or volumes)."""

    def __init__(self, ctx: ManagerContext, kind: str):
        self.cluster = ctx.cluster
        self.kind = kind   # "networks" | "volumes"
        self.noun = "network" if kind == "networks" else "volume"

    def healthy(self):
        return self.cluster.healthy_nodes()

    def target_nodes(self, name: str):
        node_name, sep, plain = name.partition("/")
        if sep:
            view = self.cluster.node_by_name(node_name)
            if view is None or not view.healthy:
                raise ApiError(404, f"No such node: {node_name}")
            return [view], plain
        return healthy_nodes(self.cluster, "in the cluster"), name

    async def list_on(self, view, query: str = "") -> list[dict]:
        path = "/networks" if self.kind == "networks" else "/volumes"
        resp = await view.client.engine_call("GET", path, query)
        if resp.status != 200:
            return []
        doc = json.loads(resp.body or b"null")
        items = doc if self.kind == "networks" else (doc or {}).get("Volumes") or []
        return items or []

    def annotate(self, view, item: dict) -> dict:
        item = dict(item)
        item["Name"] = f"{view.name}/{item.get('Name', '')}"
        item["Node"] = {"ID": view.id, "Name": view.name, "Addr": view.addr, "IP": view.node.info.host_ip}
        return item

    async def list_all(self, query: str = "") -> list[tuple[object, dict]]:
        nodes = self.healthy()
        batches = await asyncio.gather(*(self.list_on(v, query) for v in nodes))
        return [(v, item) for v, batch in zip(nodes, batches) for item in batch]

    async def find(self, ref: str) -> list[tuple[object, dict]]:
        node_name, sep, plain = ref.partition("/")
        found = []
        for view, item in await self.list_all():
            key = item.get("Id") or item.get("Name")
            if sep:
                if view.name == node_name and item.get("Name") == plain:
                    found.append((view, item))
            elif item.get("Name") == ref or (key and self.kind == "networks" and len(ref) >= 4
                                              and item.get("Id", "").startswith(ref)):
                found.append((view, item))
        if not found:
            raise ApiError(404, f"{'network' if self.kind == 'networks' else 'volume'} {ref} not found"
                           if self.kind == "networks" else f"get {ref}: no such volume")
        return found


def _networks(ctx: ManagerContext) -> _NodeObjects:
    return _NodeObjects(ctx, "networks")


def _volumes(ctx: ManagerContext) -> _NodeObjects:
    return _NodeObjects(ctx, "volumes")


# -- networks ---------------------------------------------------------------------------------

async def list_networks(ctx: ManagerContext, req: Request) -> Response:
    nets = _networks(ctx)
    query = urllib.parse.urlencode([(k, v) for k, vs in req.query.items() for v in vs])
    return json_response([nets.annotate(v, item) for v, item in await nets.list_all(query)])


async def create_network(ctx: ManagerContext, req: Request) -> Response:
    """On `node/…`'s node or on every healthy node; other nodes' failures come back as a Warning."""
    body = req.json(default=None)
    if not isinstance(body, dict) or not body.get("Name"):
        raise ApiError(400, "network name is required")
    if not isinstance(body["Name"], str):
        raise ApiError(400, "invalid network name: Name must be a string")
    nodes, plain = _networks(ctx).target_nodes(body["Name"])
    if plain in _PREDEFINED:
        raise ApiError(403, f"operation is not permitted on predefined {plain} network ")
    payload = json.dumps({**body, "Name": plain}).encode()
    results = await asyncio.gather(*(v.client.engine_call(
        "POST", "/networks/create", "", payload, {"Content-Type": "application/json"}) for v in nodes))
    created = [(v, r) for v, r in zip(nodes, results) if r.status == 201]
    failed = [(v, r) for v, r in zip(nodes, results) if r.status != 201]
    if not created or (failed and len(nodes) == 1):
        v, r = failed[0]
        return Response(r.status, r.body)
    warnings = [f"{v.name}: {json.loads(r.body or b'{}').get('message', '')}" for v, r in failed]
    doc = json.loads(created[0][1].body)
    return json_response({"Id": doc.get("Id"), "Warning": "; ".join(w for w in [doc.get("Warning")] + warnings if w)},
                         201)


async def inspect_network(ctx: ManagerContext, req: Request) -> Response:
    nets = _networks(ctx)
    view, item = (await nets.find(req.params["id"]))[0]
    resp = await view.client.engine_call("GET", f"/networks/{item['Id']}", "")
    if resp.status != 200:
        return Response(resp.status, resp.body)
    return json_response(nets.annotate(view, json.loads(resp.body)) | {"Name": json.loads(resp.body)["Name"]})


async def remove_network(ctx: ManagerContext, req: Request) -> Response:
    for view, item in await _networks(ctx).find(req.params["id"]):
        if item.get("Name") in _PREDEFINED:
            raise ApiError(403, f"{item['Name']} is a pre-defined network and cannot be removed")
        resp = await view.client.engine_call("DELETE", f"/networks/{item['Id']}", "")
        if resp.status >= 400:
            return Response(resp.status, resp.body)
    return empty(204)


async def connect_network(ctx: ManagerContext, req: Request) -> Response:
    return await _change_membership(ctx, req, "connect")


async def disconnect_network(ctx: ManagerContext, req: Request) -> Response:
    return await _change_membership(ctx, req, "disconnect")


async def _change_membership(ctx: ManagerContext, req: Request, action: str) -> Response:
    """connect/disconnect on the container's node, to that node's network of the given name."""
    body = req.json(default={}) or {}
    ref = body.get("Container")
    if not ref:
        raise ApiError(400, "container is required")
    rec, view = container_and_node(ctx.cluster, ref)
    matches = [(v, i) for v, i in await _networks(ctx).find(req.params["id"]) if v is view]
    if not matches:
        raise ApiError(404, f"network {req.params['id']} not found on node {view.name}")
    payload = json.dumps({**body, "Container": rec.id}).encode()
    resp = await view.client.engine_call("POST", f"/networks/{matches[0][1]['Id']}/{action}", "",
                                         payload, {"Content-Type": "application/json"})
    await ctx.cluster.refresh_container(view, rec.id)
    return Response(resp.status, resp.body, content_type="application/json" if resp.body else None)


async def prune_networks(ctx: ManagerContext, req: Request) -> Response:
    return await relay.prune_everywhere(req, ctx.cluster.healthy_nodes(), "/networks/prune", "NetworksDeleted",
                                        node_prefixed=True)


# -- volumes ----------------------------------------------------------------------------------

async def list_volumes(ctx: ManagerContext, req: Request) -> Response:
    vols = _volumes(ctx)
    query = urllib.parse.urlencode([(k, v) for k, vs in req.query.items() for v in vs])
    return json_response({"Volumes": [vols.annotate(v, i) for v, i in await vols.list_all(query)], "Warnings": []})


async def create_volume(ctx: ManagerContext, req: Request) -> Response:
    """On `node/…`'s node or on every healthy node; an anonymous volume on one node."""
    vols = _volumes(ctx)
    body = req.json(default={})
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ApiError(400, "invalid volume options: a JSON object is required")
    if body.get("Name") is not None and not isinstance(body["Name"], str):
        raise ApiError(400, "invalid volume name: Name must be a string")
    nodes, plain = vols.target_nodes(body.get("Name") or "")
    if not plain:
        nodes = nodes[:1]   # an anonymous volume: one node, chosen like a container would be
    payload = json.dumps({**body, "Name": plain}).encode()
    results = await asyncio.gather(*(v.client.engine_call(
        "POST", "/volumes/create", "", payload, {"Content-Type": "application/json"}) for v in nodes))
    for r in results:
        if r.status != 201:
            return Response(r.status, r.body)
    return json_response(vols.annotate(nodes[0], json.loads(results[0].body)), 201)


async def inspect_volume(ctx: ManagerContext, req: Request) -> Response:
    vols = _volumes(ctx)
    view, item = (await vols.find(req.params["name"]))[0]
    return json_response(vols.annotate(view, item))


async def remove_volume(ctx: ManagerContext, req: Request) -> Response:
    force = "force=1" if req.flag("force") else ""
    for view, item in await _volumes(ctx).find(req.params["name"]):
        resp = await view.client.engine_call("DELETE", f"/volumes/{urllib.parse.quote(item['Name'], safe='')}", force)
        if resp.status >= 400:
            return Response(resp.status, resp.body)
    return empty(204)


async def prune_volumes(ctx: ManagerContext, req: Request) -> Response:
    return await relay.prune_everywhere(req, ctx.cluster.healthy_nodes(), "/volumes/prune", "VolumesDeleted",
                                        node_prefixed=True)
