"""Routes `METHOD /path/{param}` patterns to handlers; `{name:path}` spans slashes (image names)."""
from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from swarmd.manager.httpd.errors import ApiError

_PARAM = re.compile(r"\{(\w+)(?::(path))?\}")


def _compile(pattern: str) -> re.Pattern:
    out, pos = [], 0
    for m in _PARAM.finditer(pattern):
        out.append(re.escape(pattern[pos:m.start()]))
        out.append(f"(?P<{m.group(1)}>.+?)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("^" + "".join(out) + "$")


class Router:
    def __init__(self):
        self._routes: list[tuple[str, str, re.Pattern, Callable]] = []
        self._static: dict[tuple[str, str], Callable] = {}

    def add(self, method: str, pattern: str, handler: Callable[..., Awaitable]) -> None:
        method = method.upper()
        if "{" not in pattern:
            self._static[(method, pattern)] = (pattern, handler)
        self._routes.append((method, pattern, _compile(pattern), handler))

    def resolve(self, method: str, path: str) -> tuple[Callable, dict[str, str], str]:
        """(handler, path params, route pattern); 404 `page not found` as the engine answers."""
        method = method.upper()
        hit = self._static.get((method, path))
        if hit is not None:
            return hit[1], {}, hit[0]
        path_known = False
        for m, pattern, regex, handler in self._routes:
            match = regex.match(path)
            if match is None:
                continue
            if m == method:
                return handler, match.groupdict(), pattern
            path_known = True
        if path_known and method not in ("GET", "HEAD"):
            raise ApiError(405, f"method {method} not allowed for {path}")
        raise ApiError(404, "page not found")

    def patterns(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _, _ in self._routes]
