"""Which Engine API v1.41 endpoints the manager serves: the README's coverage table, from the router.

`python -m swarmd.manager.api.coverage SPEC.yaml` prints the Markdown table. An endpoint is *supported*
when a route serves it across the cluster, *partial* when it is routed with the limits noted in
PARTIAL, and *unsupported* when it answers 501 (swarm mode, plugins, builds) or is not routed.
"""
from __future__ import annotations

import re
import sys

from swarmd.manager.api import build_router
from swarmd.manager.api.unsupported import UNSUPPORTED
from swarmd.manager.httpd.errors import ApiError

PARTIAL = {
    ("POST", "/images/create"): "pulls or imports (`fromSrc`) on every healthy node, or on `?node=`",
    ("POST", "/build"): "classic builder on one node the scheduler picks; BuildKit (`version=2`) answers 501",
    ("POST", "/images/load"): "loads the archive on every healthy node",
    ("GET", "/images/get"): "from a node holding every named image",
    ("GET", "/system/df"): "every healthy node's usage; images counted once",
    ("POST", "/build/prune"): "prunes every healthy node's build cache",
    ("GET", "/events"): "merged from all healthy nodes; each event names its node",
    ("GET", "/images/json"): "one row per image ID across nodes",
    ("POST", "/networks/create"): "node-local: `node/name` on one node, a plain name on every healthy node",
    ("POST", "/volumes/create"): "node-local: `node/name` on one node, a plain name on every healthy node",
    ("GET", "/info"): "cluster totals; nodes listed in SystemStatus as classic swarm did",
    ("POST", "/images/{name}/push"): "pushes from the first node holding the image",
    ("GET", "/nodes"): "swarmd's nodes, all workers; filters id, name, role, membership, node.label",
    ("GET", "/nodes/{id}"): "Spec.Availability and Spec.Labels are swarmd's node intent; Status ready/down",
    ("POST", "/nodes/{id}/update"): "availability and labels only (kept in etcd); the role stays worker",
    ("DELETE", "/nodes/{id}"): "a down node, or a ready one with `force`; its node ID is retired",
}

NOT_SERVED = {("GET", "/containers/{id}/attach/ws"): "websocket attach: 501"}

_PATH = re.compile(r"^  (/[^:]*):\s*$")
_METHOD = re.compile(r"^    (get|post|put|delete|head):\s*$")


def spec_endpoints(spec_text: str) -> list[tuple[str, str]]:
    out, path = [], None
    for line in spec_text.splitlines():
        m = _PATH.match(line)
        if m:
            path = m.group(1)
            continue
        m = _METHOD.match(line)
        if m and path:
            out.append((m.group(1).upper(), path))
    return out


class _Stub:
    """Enough of a ManagerContext to build the router without a cluster."""

    def __getattr__(self, name):
        return _Stub()


def classify(endpoints: list[tuple[str, str]]) -> list[tuple[str, str, str, str]]:
    router = build_router(_Stub())
    rows = []
    for method, path in endpoints:
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        note = ""
        try:
            _, _, route = router.resolve(method, concrete)
            routed = True
        except ApiError:
            routed, route = False, ""
        if not routed:
            status = "unsupported"
            note = "not routed: answers 404"
        elif (method, path) in NOT_SERVED:
            status, note = "unsupported", NOT_SERVED[(method, path)]
        elif any(route in (p, p + "/{rest:path}") for p, _ in UNSUPPORTED):
            status = "unsupported"
            note = next(w for p, w in UNSUPPORTED if route in (p, p + "/{rest:path}")) + ": 501"
        elif (method, path) in PARTIAL:
            status, note = "partial", PARTIAL[(method, path)]
        else:
            status = "supported"
        rows.append((method, path, status, note))
    return rows


def markdown(rows: list[tuple[str, str, str, str]]) -> str:
    counts = {s: sum(1 for r in rows if r[2] == s) for s in ("supported", "partial", "unsupported")}
    lines = [f"{counts['supported']} supported, {counts['partial']} partial, {counts['unsupported']} unsupported "
             f"of {len(rows)} endpoints in API v1.41.", "",
             "| Method | Path | Status | Notes |", "|---|---|---|---|"]
    lines += [f"| {m} | `{p}` | {s} | {n} |" for m, p, s, n in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(markdown(classify(spec_endpoints(f.read()))), end="")
