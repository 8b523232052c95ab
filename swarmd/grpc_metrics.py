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

    def _observe(self, method: str, context, started: float, exc: BaseException | None) -> None:
        self.histogram.labels(method, code_name(context, exc)).observe(time.perf_counter() - started)

    def _timed_coroutine(self, method: str, inner):
        """For streaming handlers written with `context.write` instead of `yield`."""
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

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = method_label(handler_call_details.method)
        observe = self._observe

        if handler.unary_unary:
            inner = handler.unary_unary

            async def unary_unary(request, context):
                started, exc = time.perf_counter(), None
                try:
                    return await inner(request, context)
                except BaseException as e:
                    exc = e
                    raise
                finally:
                    observe(method, context, started, exc)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer)

        if handler.unary_stream and not inspect.isasyncgenfunction(handler.unary_stream):
            return handler._replace(unary_stream=self._timed_coroutine(method, handler.unary_stream))
        if handler.stream_stream and not inspect.isasyncgenfunction(handler.stream_stream):
            return handler._replace(stream_stream=self._timed_coroutine(method, handler.stream_stream))

        if handler.unary_stream:
            inner_us = handler.unary_stream

            async def unary_stream(request, context):
                started, exc = time.perf_counter(), None
                try:
                    async for item in inner_us(request, context):
                        yield item
                except BaseException as e:
                    exc = e
                    raise
                finally:
                    observe(method, context, started, exc)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer)

        if handler.stream_unary:
            inner_su = handler.stream_unary

            async def stream_unary(request_iterator, context):
                started, exc = time.perf_counter(), None
                try:
                    return await inner_su(request_iterator, context)
                except BaseException as e:
                    exc = e
                    raise
                finally:
                    observe(method, context, started, exc)

            return grpc.stream_unary_rpc_method_handler(
                stream_unary, handler.request_deserializer, handler.response_serializer)

        if handler.stream_stream:
            inner_ss = handler.stream_stream

            async def stream_stream(request_iterator, context):
                started, exc = time.perf_counter(), None
                try:
                    async for item in inner_ss(request_iterator, context):
                        yield item
                except BaseException as e:
                    exc = e
                    raise
                finally:
                    observe(method, context, started, exc)

            return grpc.stream_stream_rpc_method_handler(
                stream_stream, handler.request_deserializer, handler.response_serializer)
        return handler
