"""`/exec/{id}/*`: exec instances live on the node that created them."""
from __future__ import annotations

import json

from manager.api import relay
from manager.api.context import ManagerContext
from manager.httpd.errors import ApiError
from manager.httpd.request import Request
from manager.httpd.response import Response


def register(router, ctx: ManagerContext) -> None:
    cluster = ctx.cluster

    def node_of(exec_id: str):
        node_id = cluster.execs.get(exec_id)
        view = cluster.nodes.get(node_id) if node_id else None
        if view is None:
            raise ApiError(404, f"No such exec instance: {exec_id}")
        return view

    async def start(req: Request):
        exec_id = req.params["id"]
        view = node_of(exec_id)
        body = req.json(default={}) or {}
        if body.get("Detach"):
            return await relay.unary(req, view.client, f"/exec/{exec_id}/start")
        return await relay.stream(req, view.client, f"/exec/{exec_id}/start",
                                  body=json.dumps(body).encode())

    async def resize(req: Request) -> Response:
        exec_id = req.params["id"]
        return await relay.unary(req, node_of(exec_id).client, f"/exec/{exec_id}/resize")

    async def inspect(req: Request) -> Response:
        exec_id = req.params["id"]
        return await relay.unary(req, node_of(exec_id).client, f"/exec/{exec_id}/json")

    router.add("POST", "/exec/{id}/start", start)
    router.add("POST", "/exec/{id}/resize", resize)
    router.add("GET", "/exec/{id}/json", inspect)
