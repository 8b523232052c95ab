"""Endpoints a classic cluster does not offer: a clear 501 instead of `page not found`."""
from __future__ import annotations

from manager.api.context import ManagerContext
from manager.httpd.errors import ApiError
from manager.httpd.request import Request

# (path prefix, what it is) — swarm mode and engine-local features swarmd does not provide
UNSUPPORTED = (
    ("/swarm", "swarm mode (use swarmd's own clustering)"),
    ("/services", "swarm-mode services"),
    ("/tasks", "swarm-mode tasks"),
    ("/nodes", "swarm-mode nodes (see `docker info` for the cluster's nodes)"),
    ("/secrets", "swarm-mode secrets"),
    ("/configs", "swarm-mode configs"),
    ("/plugins", "plugins"),
    ("/build", "image builds through the manager"),
    ("/session", "build sessions"),
    ("/distribution", "registry distribution inspection"),
    ("/grpc", "BuildKit gRPC"),
)
_METHODS = ("GET", "POST", "DELETE", "PUT", "HEAD")


def register(router, ctx: ManagerContext) -> None:
    for prefix, what in UNSUPPORTED:
        async def handler(req: Request, what=what):
            raise ApiError(501, f"{what} is not supported by swarmd")
        for method in _METHODS:
            router.add(method, prefix, handler)
            router.add(method, prefix + "/{rest:path}", handler)
