"""The Docker Engine API as the manager serves it: one module per resource, all thin; the routes
to every handler are listed in `manager.api.routes`."""
from __future__ import annotations

from functools import partial

from swarmd.manager.api.context import ManagerContext
from swarmd.manager.api.routes import ROUTES
from swarmd.manager.httpd.router import Router


def build_router(ctx: ManagerContext) -> Router:
    """The Router of every route in ROUTES, each handler bound to `ctx`."""
    router = Router()
    for method, pattern, handler in ROUTES:
        router.add(method, pattern, partial(handler, ctx))
    return router
