"""`GET /events` handler: one merged stream of every node's events, each carrying its `node`."""
from __future__ import annotations

import asyncio
import json
import time

from swarmd.manager import event_filters
from swarmd.manager.cluster import ClusterView, with_node
from swarmd.manager.api.context import ManagerContext
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.httpd.request import Request
from swarmd.manager.httpd.response import ClientGone


def _parse_ts(value: str | None, name: str) -> float | None:
    """Engine timestamps: unix seconds with optional fraction, or a duration ago ('10m')."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    units = {"s": 1, "m": 60, "h": 3600}
    if value[-1:] in units:
        try:
            return time.time() - float(value[:-1]) * units[value[-1]]
        except ValueError:
            pass
    raise ApiError(400, f"invalid value for {name}: {value}")


async def _past_events(cluster: ClusterView, since: float, until: float, filters) -> list[dict]:
    """Every healthy node's events between since and until, filtered, in time order."""
    query = f"since={since:.9f}&until={until:.9f}"

    async def one(view):
        try:
            resp = await view.client.engine_call("GET", "/events", query)
        except ApiError:
            return []
        out = []
        for line in resp.body.splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            out.append(with_node(ev, view))
        return out

    batches = await asyncio.gather(*(one(v) for v in cluster.healthy_nodes()))
    merged = [e for batch in batches for e in batch if event_filters.matches(e, filters)]
    merged.sort(key=lambda e: e.get("timeNano") or 0)
    return merged


async def events(ctx: ManagerContext, req: Request):
    """Past events first (from `since`), then live ones until `until` or the client leaves."""
    cluster = ctx.cluster
    filters = req.filters()
    event_filters.validate(filters)
    since = _parse_ts(req.arg("since"), "since")
    until = _parse_ts(req.arg("until"), "until")
    now = time.time()
    queue = cluster.subscribe() if until is None or until > now else None
    try:
        writer = await req.start_stream(200, "application/json")
        if since is not None:
            for ev in await _past_events(cluster, since, min(until or now, now), filters):
                await writer.write(json.dumps(ev).encode() + b"\n")
        if queue is not None:
            deadline = None if until is None else until
            while True:
                timeout = None if deadline is None else max(0.0, deadline - time.time())
                try:
                    ev = await asyncio.wait_for(queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                if ev is None:   # fell too far behind: end the stream rather than skip events
                    break
                if event_filters.matches(ev, filters):
                    await writer.write(json.dumps(ev).encode() + b"\n")
        await writer.close()
    except ClientGone:
        pass
    finally:
        if queue is not None:
            cluster.unsubscribe(queue)
    return None
