"""The Docker Engine API as the manager serves it: one module per resource, all thin."""
from __future__ import annotations

from manager.api import containers, events, execs, images, networks, system, unsupported
from manager.api.context import ManagerContext
from manager.httpd.router import Router


def build_router(ctx: ManagerContext) -> Router:
    router = Router()
    for module in (system, containers, execs, images, networks, events, unsupported):
        module.register(router, ctx)
    return router
