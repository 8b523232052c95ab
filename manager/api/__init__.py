"""The Docker Engine API as the manager serves it: one module per resource, all thin; the routes
to every handler are listed in `manager.api.routes`."""
from __future__ import annotations

from functools import partial

from swarmd.manager.api.context import ManagerContext
from swarmd.manager.api.routes import ANSWERED_BEFORE_READ_BACK, ROUTES
from swarmd.manager.httpd.router import Router


def build_router(ctx: ManagerContext) -> Router:
    """The Router of every route in ROUTES, each handler bound to `ctx`; every handler but those of
    ANSWERED_BEFORE_READ_BACK runs once the changes answered before its request are in the view."""
    router = Router()
    for method, pattern, handler in ROUTES:
        bound = partial(handler, ctx)
        if getattr(handler, "func", handler) not in ANSWERED_BEFORE_READ_BACK:
            bound = partial(_after_changes_stored, bound, ctx)
        router.add(method, pattern, bound)
    return router


async def _after_changes_stored(handler, ctx: ManagerContext, req):
    # read-your-writes: a create or start is answered before the agent's read-back is stored
    if ctx.cluster.settling:
        await ctx.cluster.settled()
    return await handler(req)
