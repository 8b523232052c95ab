"""Engine errors across gRPC: the engine's HTTP status and message, both ways.

The agent aborts an RPC with a gRPC status chosen from the engine's HTTP status and adds the
exact HTTP status as trailing metadata `engine-status`; the manager reads it back so that a
Docker client sees the engine's own status and wording (`No such container: x`, 409 conflicts).
"""
from __future__ import annotations

import grpc

from swarmd.common import logs

log = logs.get("engine_errors")

STATUS_KEY = "engine-status"
# what leaves the agent when its engine cannot be reached: the reason (the engine's socket path or
# address, the OS error) is the agent's business, logged there, never shown to a Docker client
ENGINE_UNREACHABLE = "its Docker engine does not answer"

_TO_GRPC = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ALREADY_EXISTS,
    412: grpc.StatusCode.FAILED_PRECONDITION,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

_FROM_GRPC = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.CANCELLED: 503,
}


def grpc_code_for(http_status: int) -> grpc.StatusCode:
    return _TO_GRPC.get(http_status, grpc.StatusCode.INTERNAL)


def trailing_metadata(http_status: int) -> tuple[tuple[str, str], ...]:
    return ((STATUS_KEY, str(http_status)),)


def shown_message(http_status: int, message: str) -> str:
    """What the manager is told of an engine error: its words, but only that the engine does not
    answer when it cannot be reached (the reason is logged here)."""
    if http_status == 503:
        log.warning("engine unreachable", error=message)
        return ENGINE_UNREACHABLE
    return message


async def abort(context: grpc.aio.ServicerContext, http_status: int, message: str) -> None:
    """Ends the RPC with the engine's status and message (never returns)."""
    message = shown_message(http_status, message)
    context.set_trailing_metadata(trailing_metadata(http_status))
    await context.abort(grpc_code_for(http_status), message)


def engine_status_sent(err: grpc.RpcError) -> bool:
    """Whether the agent ended the call with an engine status (rather than gRPC itself)."""
    try:
        return any(key == STATUS_KEY for key, _ in err.trailing_metadata() or ())
    except (TypeError, ValueError):
        return False


def engine_error_from_rpc(err: grpc.RpcError) -> tuple[int, str]:
    """(HTTP status, message) for a failed call: the engine's own when the agent sent one."""
    status = 0
    try:
        for key, value in err.trailing_metadata() or ():
            if key == STATUS_KEY:
                status = int(value)
    except (TypeError, ValueError):
        status = 0
    code = err.code()
    if not status:
        status = _FROM_GRPC.get(code, 500)
    message = err.details() or code.name.lower().replace("_", " ")
    if code == grpc.StatusCode.UNAVAILABLE and not err.trailing_metadata():
        message = f"agent unavailable: {message}"
    return status, message
