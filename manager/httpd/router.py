"""Routes `METHOD /path/{param}` patterns to handlers; `{name:path}` spans slashes (image names).

Resolution tries only the routes that can match the path's shape: a route whose first (last) path
segment is literal matches only paths with that first (last) segment, so the candidates for each
(first, last) pair are listed once, in the order the routes were added, and reused for every path
of that shape. Which route answers, and the 404/405, are the same as trying every route in order.
"""
from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from swarmd.manager.httpd.errors import ApiError

_PARAM = re.compile(r"\{(\w+)(?::(path))?\}")
_ANY = None                  # a segment holding a parameter, or a path segment no route names
_SHAPES_MAX = 4096           # candidate lists kept (bounded by the routes' literal segments anyway)


def compile_pattern(pattern: str) -> re.Pattern:
    """The anchored regular expression of a route pattern, with a named group per parameter."""
    out, pos = [], 0
    for m in _PARAM.finditer(pattern):
        out.append(re.escape(pattern[pos:m.start()]))
        out.append(f"(?P<{m.group(1)}>.+?)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("^" + "".join(out) + "$")


def _ends(path: str) -> tuple[str, str]:
    """The first and last segments of `/a/b/c`: ("a", "c"); of `/a`: ("a", "a"). A final newline is
    not part of the last segment: the routes' `$` matches before one, as it always has."""
    first = path[1:].partition("/")[0] if path.startswith("/") else _ANY
    last = path.rpartition("/")[2]
    return first, last[:-1] if last.endswith("\n") else last


def route_ends(pattern: str) -> tuple[str | None, str | None]:
    """A pattern's literal first and last segments; `_ANY` where a segment holds a parameter."""
    if not pattern.startswith("/"):
        return _ANY, _ANY
    first, last = _ends(pattern)
    return (_ANY if "{" in first else first), (_ANY if "{" in last or "}" in last else last)


class Router:
    def __init__(self):
        self._routes: list[tuple[str, str, re.Pattern, Callable]] = []
        self._static: dict[tuple[str, str], Callable] = {}
        self._firsts: set[str] = set()
        self._lasts: set[str] = set()
        self._ends: list[tuple[str | None, str | None]] = []
        self._shapes: dict[tuple[str | None, str | None], list[tuple[str, str, re.Pattern, Callable]]] = {}

    def add(self, method: str, pattern: str, handler: Callable[..., Awaitable]) -> None:
        method = method.upper()
        if "{" not in pattern:
            self._static[(method, pattern)] = (pattern, handler)
        self._routes.append((method, pattern, compile_pattern(pattern), handler))
        first, last = route_ends(pattern)
        self._ends.append((first, last))
        if first is not _ANY:
            self._firsts.add(first)
        if last is not _ANY:
            self._lasts.add(last)
        self._shapes.clear()

    def _candidates(self, path: str) -> list[tuple[str, str, re.Pattern, Callable]]:
        first, last = _ends(path)
        key = (first if first in self._firsts else _ANY, last if last in self._lasts else _ANY)
        routes = self._shapes.get(key)
        if routes is None:
            routes = [r for r, (f, t) in zip(self._routes, self._ends)
                      if (f is _ANY or f == key[0]) and (t is _ANY or t == key[1])]
            if len(self._shapes) < _SHAPES_MAX:
                self._shapes[key] = routes
        return routes

    def resolve(self, method: str, path: str) -> tuple[Callable, dict[str, str], str]:
        """(handler, path params, route pattern); 404 `page not found` as the engine answers."""
        method = method.upper()
        hit = self._static.get((method, path))
        if hit is not None:
            return hit[1], {}, hit[0]
        path_known = False
        for m, pattern, regex, handler in self._candidates(path):
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
