"""The manager's read-only web view (`swarm manage --ui-addr`): one page and its data, served on a
second address by the manager's own HTTP server; the routes are listed in `manager.ui.routes`."""
from __future__ import annotations

import ssl
from functools import partial

from swarmd.manager.api.context import API_VERSION, MIN_API_VERSION, VERSION, ManagerContext
from swarmd.manager.httpd.router import Router
from swarmd.manager.httpd.server import HttpServer
from swarmd.manager.ui.routes import ROUTES


def build_ui_router(ctx: ManagerContext) -> Router:
    """The Router of every route in the web view's table, each handler bound to `ctx`."""
    router = Router()
    for method, pattern, handler in ROUTES:
        router.add(method, pattern, partial(handler, ctx))
    return router


def build_ui_server(ctx: ManagerContext, ssl_context: ssl.SSLContext | None) -> HttpServer:
    """The web view's server; `ssl_context` is the API's, so --tlsverify demands a client certificate here too."""
    return HttpServer(build_ui_router(ctx), api_version=API_VERSION, min_api_version=MIN_API_VERSION,
                      server_header=f"swarmd/{VERSION} web view", ssl_context=ssl_context)
