"""`POST /build` with the classic (non-BuildKit) builder: one node, chosen by the scheduler, builds.

As classic swarm's `Cluster.BuildImage` (cluster/swarm/cluster.go), the build args are read as a
container's environment: `--build-arg constraint:node==node2` (the CLI sends the arg
`constraint:node` with the value `=node2`) and `--build-arg affinity:image==busybox` steer the
choice and never reach the engine; `memory` is reserved as a container's would be. The tar context
goes to that node's agent with the call, the engine's output comes back as it is written, each line
naming the node (classic set the message `id` to the engine's name), and the node's images are
re-read when the build ends, so `docker run` of the new image finds it there.

BuildKit (`version=2` here; `/session` and `/grpc` in `manager.api.unsupported`) needs a session
between the client and one engine that a relay of single calls cannot carry: it gets a 501 naming
the classic builder.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from swarmd.manager.api import relay
from swarmd.manager.api.context import ManagerContext
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.httpd.request import Request
from swarmd.manager.scheduler import ContainerSpec, NoSuitableNode, SchedulerError

BUILDKIT_REFUSED = ("BuildKit builds are not supported by swarmd: use the classic builder "
                    "(DOCKER_BUILDKIT=0 docker build …, or docker-compose build)")

# build-arg key prefixes that are swarm rules, as container environment entries are
_RULE_PREFIXES = ("constraint:", "affinity:")


@dataclass(frozen=True)
class BuildPlan:
    """What a build request asks of the scheduler, and the query the engine gets."""

    spec_body: dict                       # a create body the scheduler reads: the rules, the memory
    engine_query: list[tuple[str, str]]   # the client's query without the rule build args


def _build_args(raw: str | None) -> dict:
    if not raw:
        return {}
    try:
        args = json.loads(raw)
    except ValueError:
        raise ApiError(400, f"invalid buildargs {raw!r}: expected a JSON object") from None
    if not isinstance(args, dict) or not all(isinstance(v, (str, type(None))) for v in args.values()):
        raise ApiError(400, f"invalid buildargs {raw!r}: expected a JSON object of strings")
    return args


def _memory(raw: str | None) -> int:
    try:
        value = int(raw or 0)
    except ValueError:
        raise ApiError(400, f"invalid memory {raw!r}: expected a number of bytes") from None
    if value < 0:
        raise ApiError(400, f"invalid memory {raw!r}: expected a number of bytes")
    return value


def plan_build(query: dict[str, list[str]]) -> BuildPlan:
    """Reads a `POST /build` query: pure, raises ApiError 400 for malformed arguments.

    A rule build arg `constraint:node` = `=node2` is the environment entry `constraint:node==node2`,
    as classic's convertMapToKVStrings made it; a rule without a value is kept as its key."""
    if (query.get("version") or [""])[-1] == "2":
        raise ApiError(501, BUILDKIT_REFUSED)
    args = _build_args((query.get("buildargs") or [""])[-1])
    rules = {k: v for k, v in args.items() if k.startswith(_RULE_PREFIXES)}
    env = [k if v is None else f"{k}={v}" for k, v in rules.items()]
    tags = query.get("t") or []
    spec_body = {"Image": tags[0] if tags else "build", "Env": env,
                 "HostConfig": {"Memory": _memory((query.get("memory") or [""])[-1])}}
    engine_query = []
    for key, values in query.items():
        if key == "buildargs":
            kept = {k: v for k, v in args.items() if k not in rules}
            values = [json.dumps(kept)] if kept else []
        engine_query += [(key, v) for v in values]
    return BuildPlan(spec_body, engine_query)


class BuildLines:
    """The engine's build output as the client sees it: each line carries the node as its `id`, so
    the CLI prints `node2: Step 1/3 : FROM busybox`, and pull progress ids inside a build are
    prefixed by the node. The engine sends a line's text and its newline as separate messages at
    times: only a message that starts a line is named. Quiet builds stay bare: `docker build -q`
    prints the engine's output, the image ID, and scripts read it."""

    def __init__(self, node_name: str, quiet: bool):
        self.node_name = node_name
        self.quiet = quiet
        self._line_start = True

    def name(self, doc):
        if self.quiet or not isinstance(doc, dict) or doc.get("error") or doc.get("aux") is not None:
            return doc
        stream = doc.get("stream")
        if isinstance(stream, str):
            if self._line_start and stream.strip():
                doc["id"] = self.node_name
            self._line_start = stream.endswith("\n") or (self._line_start and not stream)
        elif doc.get("id"):
            doc["id"] = f"{self.node_name}: {doc['id']}"
        elif doc.get("status"):
            doc["id"] = self.node_name
        return doc


async def build_image(ctx: ManagerContext, req: Request):
    """Builds on the node the scheduler picks and streams the engine's output as it comes."""
    plan = plan_build(req.query)
    try:
        spec = ContainerSpec.from_create(plan.spec_body)
        chosen = ctx.scheduler.select(spec, ctx.cluster.snapshots())
    except NoSuitableNode as exc:
        raise ApiError(500, str(exc)) from None
    except SchedulerError as exc:
        raise ApiError(400, str(exc)) from None
    view = ctx.cluster.nodes[chosen.id]
    query = "&".join(f"{k}={relay.quote(v)}" for k, v in plan.engine_query)
    lines = BuildLines(view.name, req.flag("q"))
    writer = None
    try:
        async for doc in relay.json_lines(req, view.client, "/build", query, body=req.body):
            if writer is None:
                writer = await req.start_stream(200, "application/json")
            await writer.write(json.dumps(lines.name(doc)).encode() + b"\r\n")
    finally:
        try:
            await ctx.cluster.refresh_images(view)
        except ApiError:
            pass                  # a node lost meanwhile: its images are re-read when it returns
    if writer is None:
        writer = await req.start_stream(200, "application/json")
    await writer.close()
    return None

