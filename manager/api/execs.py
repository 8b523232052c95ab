"""`/exec/{id}/*` handlers: exec instances live on the node that created them."""
from __future__ import annotations

import json

from swarmd.manager.api import relay
from swarmd.manager.api.context import ManagerContext
from swarmd.manager.api.lookups import exec_node, on_exec_node
from swarmd.manager.httpd.request import Request
from swarmd.manager.httpd.response import Response


@on_exec_node
async def start_exec(ctx: ManagerContext, req: Request):
    """Detached: one answer. Attached: a stream, hijacked when the client asked to upgrade."""
    exec_id = req.params["id"]
    view = exec_node(ctx.cluster, exec_id)
    body = req.json(default={}) or {}
    if body.get("Detach"):
        return await relay.unary(req, view.client, f"/exec/{exec_id}/start")
    return await relay.stream(req, view.client, f"/exec/{exec_id}/start", body=json.dumps(body).encode())


@on_exec_node
async def resize_exec(ctx: ManagerContext, req: Request) -> Response:
    exec_id = req.params["id"]
    return await relay.unary(req, exec_node(ctx.cluster, exec_id).client, f"/exec/{exec_id}/resize")


@on_exec_node
async def inspect_exec(ctx: ManagerContext, req: Request) -> Response:
    exec_id = req.params["id"]
    return await relay.unary(req, exec_node(ctx.cluster, exec_id).client, f"/exec/{exec_id}/json")
