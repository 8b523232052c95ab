"""One parsed API request, with the Engine API's ways of reading query arguments and bodies."""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.httpd.response import HijackedConnection, StreamWriter

_FALSE = {"", "0", "false", "no", "none"}
MAX_JSON_BODY = 8 << 20


class Headers:
    """Case-insensitive, last value wins for `get`; `items()` keeps every value."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self._pairs = pairs
        self._map = {k.lower(): v for k, v in pairs}

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._map.get(name.lower(), default)

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._map


class Request:
    def __init__(self, method: str, path: str, query: dict[str, list[str]], headers: Headers, body: bytes,
                 version: str, params: dict[str, str] | None = None, route: str = "",
                 start_stream: Callable[[int, str, dict], Awaitable[StreamWriter]] | None = None,
                 hijack: Callable[[str], Awaitable[HijackedConnection]] | None = None,
                 peer: str = ""):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.version = version
        self.params = params or {}
        self.route = route
        self.peer = peer
        self.received_ns = 0       # time.perf_counter_ns() when the server had the head (0: not known)
        self._start_stream = start_stream
        self._hijack = hijack

    # -- query arguments ----------------------------------------------------------------------

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name: str) -> list[str]:
        return list(self.query.get(name) or [])

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.arg(name)
        if value is None:
            return default
        return value.strip().lower() not in _FALSE

    def int_arg(self, name: str, default: int = 0) -> int:
        value = self.arg(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise ApiError(400, f"invalid value for {name}: {value!r} is not an integer") from None

    def filters(self) -> dict[str, list[str]]:
        """`filters` as {key: [values]}: accepts docker-py's lists and Go's {value: true} maps."""
        raw = self.arg("filters")
        if not raw:
            return {}
        try:
            doc = json.loads(raw)
        except ValueError:
            raise ApiError(400, f"invalid filter: {raw!r} is not valid JSON") from None
        if not isinstance(doc, dict):
            raise ApiError(400, "invalid filter: expected a JSON object")
        out: dict[str, list[str]] = {}
        for key, value in doc.items():
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                out[key] = list(value)
            elif isinstance(value, dict):
                out[key] = [k for k, on in value.items() if on]
            elif isinstance(value, str):
                out[key] = [value]
            else:
                raise ApiError(400, f"invalid filter '{key}': values must be a list of strings")
        return out

    # -- body ---------------------------------------------------------------------------------

    _MISSING = object()

    def json(self, default=_MISSING):
        if not self.body or not self.body.strip():
            if default is Request._MISSING:
                raise ApiError(400, "request body is empty: a JSON document is required")
            return default
        if len(self.body) > MAX_JSON_BODY:
            raise ApiError(413, f"request body too large for a JSON document (limit {MAX_JSON_BODY} bytes)")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"invalid JSON in request body: {exc}") from None

    # -- streaming ----------------------------------------------------------------------------

    async def start_stream(self, status: int = 200, content_type: str = "application/json",
                           headers: dict[str, str] | None = None) -> StreamWriter:
        """Sends the status and headers at once (clients wait on them) and returns the body writer."""
        if self._start_stream is None:
            raise RuntimeError("streaming is not available for this request")
        return await self._start_stream(status, content_type, headers or {})

    async def hijack(self, content_type: str = "application/vnd.docker.raw-stream") -> HijackedConnection:
        """Answers `101 UPGRADED` and hands over the raw connection."""
        if self._hijack is None:
            raise RuntimeError("this request cannot be hijacked")
        return await self._hijack(content_type)
