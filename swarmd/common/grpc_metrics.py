"""A gRPC server interceptor that times every call and counts it by method and status code.

Used by the agent and the discovery daemon. Streaming calls are timed to the end of the stream.
The method label is `Service/Method` without the package (`Agent/EngineCall`, `Health/Check`).
"""
from __future__ import annotations

import inspect
import time

import grpc
from prometheus_client import Histogram


def method_label(full_method: str) -> str:
    """'/swarm.v1.Agent/Ping' -> 'Agent/Ping'."""
    service, _, method = full_method.lstrip("/").partition("/")
    return f"{service.rsplit('.', 1)[-1]}/{method}"


def code_name(context, exc: BaseException | None) -> str:
    code = None
    try:
        code = context.code()
    except Exception:  # older servicer contexts have no code(): fall back on the outcome
        code = None
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        for sc in grpc.StatusCode:
            if sc.value[0] == code:
                return sc.name
    if exc is None:
        return "OK"
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        return exc.code().name
    return "CANCELLED" if type(exc).__name__ == "CancelledError" else "UNKNOWN"


class RpcMetrics(grpc.aio.ServerInterceptor):
    """Observes `histogram.labels(method, code)` once per call, with the call's duration."""

    def __init__(self, histogram: Histogram):
        self.histogram = histogram
        self._timed: dict[str, grpc.RpcMethodHandler] = {}     # method path -> its handler, timed

    def _observe(self, method: str, context, started: float, exc: BaseException | None) -> None:
        self.histogram.labels(method, code_name(context, exc)).observe(time.perf_counter() - started)

    def _timed_coroutine(self, method: str, inner):
        """Unary handlers, and streaming ones written with `context.write` instead of `yield`."""
        observe = self._observe

        async def timed(request_or_iterator, context):
            started, exc = time.perf_counter(), None
            try:
                return await inner(request_or_iterator, context)
            except BaseException as e:
                exc = e
                raise
            finally:
                observe(method, context, started, exc)

        return timed

    def _timed_stream(self, method: str, inner):
        """Streaming handlers written with `yield`: timed to the end of the stream."""
        observe = self._observe

        async def timed(request_or_iterator, context):
            started, exc = time.perf_counter(), None
            try:
                async for item in inner(request_or_iterator, context):
                    yield item
            except BaseException as e:
                exc = e
                raise
            finally:
                observe(method, context, started, exc)

        return timed

    async def intercept_service(self, continuation, handler_call_details):
        """The method's handler, timed. A server's handlers are fixed once it serves, so each
        method's is looked up and wrapped once (this interceptor comes last: it does not call on
        for a method it has seen); a method the server lacks is looked up each time."""
        path = handler_call_details.method
        timed = self._timed.get(path)
        if timed is None:
            handler = await continuation(handler_call_details)
            if handler is None:
                return None
            timed = self._timed[path] = self._timed_handler(method_label(path), handler)
        return timed

    def _timed_handler(self, method: str, handler):
        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            inner = getattr(handler, kind)
            if inner:
                wrap = self._timed_stream if inspect.isasyncgenfunction(inner) else self._timed_coroutine
                return handler._replace(**{kind: wrap(method, inner)})
        return handler
