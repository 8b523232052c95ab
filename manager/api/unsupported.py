"""Endpoints a classic cluster does not offer: a clear 501 instead of `page not found`.

`manager.api.routes` routes each prefix in UNSUPPORTED, and every path under it, to `refuse`."""
from __future__ import annotations

from swarmd.manager.api.context import ManagerContext
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.httpd.request import Request

# (path prefix, what it is) — swarm mode and engine-local features swarmd does not provide
UNSUPPORTED = (
    ("/swarm", "swarm mode (use swarmd's own clustering)"),
    ("/services", "swarm-mode services"),
    ("/tasks", "swarm-mode tasks"),
    ("/secrets", "swarm-mode secrets"),
    ("/configs", "swarm-mode configs"),
    ("/plugins", "plugins"),
    ("/session", "BuildKit (build with the classic builder: DOCKER_BUILDKIT=0)"),
    ("/distribution", "registry distribution inspection"),
    ("/grpc", "BuildKit (build with the classic builder: DOCKER_BUILDKIT=0)"),
)
# every method gets the 501, so that no verb falls through to `page not found`
METHODS = ("GET", "POST", "DELETE", "PUT", "HEAD")


async def refuse(ctx: ManagerContext, req: Request, what: str):
    raise ApiError(501, f"{what} is not supported by swarmd")
