"""The servers' RPC metrics interceptor: every call timed under its method, each method's handler
looked up and wrapped once (the lookup and wrapping cost every call of every agent and
discovery daemon before)."""
from __future__ import annotations

import types

import grpc
from prometheus_client import CollectorRegistry, Histogram

from swarmd.common.grpc_metrics import RpcMetrics


class Context:
    def code(self):
        return grpc.StatusCode.OK


async def answer(request, context):
    return f"answer to {request}"


def interceptor() -> tuple[RpcMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return RpcMetrics(Histogram("test_rpc_seconds", "calls", ["method", "code"], registry=registry)), registry


async def test_each_method_is_looked_up_once_and_every_call_is_timed():
    metrics, registry = interceptor()
    looked_up = []

    async def continuation(details):
        looked_up.append(details.method)
        if details.method.endswith("/Missing"):
            return None
        return grpc.unary_unary_rpc_method_handler(answer)

    ping, missing = (types.SimpleNamespace(method=f"/swarm.v1.Agent/{m}") for m in ("Ping", "Missing"))
    for i in range(3):
        handler = await metrics.intercept_service(continuation, ping)
        assert await handler.unary_unary(i, Context()) == f"answer to {i}"
    assert await metrics.intercept_service(continuation, missing) is None
    assert await metrics.intercept_service(continuation, missing) is None
    assert looked_up == ["/swarm.v1.Agent/Ping", "/swarm.v1.Agent/Missing", "/swarm.v1.Agent/Missing"]
    assert registry.get_sample_value("test_rpc_seconds_count", {"method": "Agent/Ping", "code": "OK"}) == 3
