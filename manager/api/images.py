"""`/images/*` handlers across nodes: one row per image, with the nodes that hold it.

Each handler takes the manager context and the request; `manager.api.routes` names the path of each."""
from __future__ import annotations

import asyncio
import json
import urllib.parse

from swarmd.manager.api import relay
from swarmd.manager.api.context import ManagerContext
from swarmd.manager.api.lookups import container_and_node, healthy_nodes, image_holders, image_matches, nodes_with_image
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.httpd.request import Request
from swarmd.manager.httpd.response import Response, json_response


def _without_node_filter(req: Request) -> tuple[list[str], str]:
    """The `node` filter's values (names or IDs, as classic swarm's getImagesJSON took them) and the
    query for the engines, which know no such filter, without it."""
    filters = req.filters()          # malformed filters get a 400 before any node is asked
    wanted = filters.pop("node", [])
    pairs = [(k, v) for k, vs in req.query.items() for v in vs if not (wanted and k == "filters")]
    if wanted and filters:
        pairs.append(("filters", json.dumps({k: {v: True for v in vs} for k, vs in filters.items()})))
    return wanted, urllib.parse.urlencode(pairs)


async def list_images(ctx: ManagerContext, req: Request) -> Response:
    """Each healthy node (or each the `node` filter names) lists with the client's other filters;
    rows are merged by image ID."""
    wanted, query = _without_node_filter(req)
    nodes = [v for v in ctx.cluster.healthy_nodes() if not wanted or v.name in wanted or v.id in wanted]
    answers = await asyncio.gather(*(v.client.engine_call("GET", "/images/json", query) for v in nodes),
                                   return_exceptions=True)
    merged: dict[str, dict] = {}
    for resp in answers:
        if isinstance(resp, BaseException):
            if not isinstance(resp, ApiError):
                raise resp
            continue                      # an unreachable node lists nothing
        if resp.status != 200:
            return Response(resp.status, resp.body, content_type="application/json")
        for img in json.loads(resp.body or b"[]"):
            row = merged.get(img["Id"])
            if row is None:
                row = merged[img["Id"]] = dict(img)
                row["RepoTags"] = list(img.get("RepoTags") or [])
                row["RepoDigests"] = list(img.get("RepoDigests") or [])
            else:
                row["RepoTags"] = sorted(set(row["RepoTags"]) | set(img.get("RepoTags") or []))
                row["RepoDigests"] = sorted(set(row["RepoDigests"]) | set(img.get("RepoDigests") or []))
    return json_response(sorted(merged.values(), key=lambda r: r.get("Created", 0), reverse=True))


async def inspect_image(ctx: ManagerContext, req: Request) -> Response:
    """The first holder's document, with `Nodes` naming every node that holds the image."""
    name = req.params["name"]
    nodes = nodes_with_image(ctx.cluster, name)
    resp = await relay.unary(req, nodes[0].client, f"/images/{relay.quote(name)}/json")
    if resp.status == 200:
        doc = json.loads(resp.body)
        doc["Nodes"] = [v.name for v in nodes]
        return json_response(doc)
    return resp


def _create_targets(ctx: ManagerContext, req: Request) -> list:
    """Every healthy node, or the one `?node=NAME` names."""
    targets = ctx.cluster.healthy_nodes()
    only = req.arg("node")
    if only:
        targets = [v for v in targets if v.name == only]
        if not targets:
            raise ApiError(404, f"No such node: {only}")
    if not targets:
        raise ApiError(500, "no healthy node to pull on")
    return targets


async def create_image(ctx: ManagerContext, req: Request):
    """`docker pull` (`fromImage`) and `docker import` (`fromSrc`), on every healthy node or on
    `?node=NAME` only, relaying each node's progress as it comes.

    Classic swarm's postImagesCreate and Cluster.Import did both on every node; importing everywhere
    puts the image wherever containers may land, as `docker load` does. Each progress line names its
    node; a node that fails reports an in-band error line (`error` and `errorDetail`, as the engine
    does) while the others carry on."""
    if not req.arg("fromImage") and not req.arg("fromSrc"):
        raise ApiError(400, "fromImage or fromSrc is required")
    body = req.body if not req.arg("fromImage") else b""       # an import's tar (`fromSrc=-`)
    targets = _create_targets(ctx, req)
    query = "&".join(f"{k}={relay.quote(v)}" for k, vs in req.query.items() if k != "node" for v in vs)
    writer = await req.start_stream(200, "application/json")
    lock = asyncio.Lock()

    async def emit(doc: dict) -> None:
        async with lock:
            await writer.write(json.dumps(doc).encode() + b"\r\n")

    async def one(view) -> None:
        try:
            async for doc in relay.json_lines(req, view.client, "/images/create", query, body=body):
                await emit(_named_progress(view.name, doc))
        except ApiError as err:
            message = f"{view.name}: {err.message}"
            await emit({"error": message, "errorDetail": {"message": message}})
        try:
            await ctx.cluster.refresh_images(view)
        except ApiError:
            pass

    await asyncio.gather(*(one(v) for v in targets))
    await writer.close()
    return None


def _named_progress(node_name: str, doc):
    """A pull progress line as the client sees it: its id, status or error prefixed by the node."""
    if isinstance(doc, dict):
        if doc.get("id") is not None:
            doc["id"] = f"{node_name}: {doc['id']}"
        elif doc.get("status"):
            doc["status"] = f"{node_name}: {doc['status']}"
        elif doc.get("error"):
            doc["error"] = f"{node_name}: {doc['error']}"
            doc["errorDetail"] = {"message": doc["error"]}
    return doc


def _merged_errors(nodes, results) -> ApiError | None:
    """Classic swarm's answer when some nodes refused (Cluster.RemoveImages, Cluster.TagImage): one
    `node: message` line each; the engine's status when they agree, else 500."""
    failed = [(v, r) for v, r in zip(nodes, results) if r.status >= 400]
    if not failed:
        return None
    statuses = {r.status for _, r in failed}
    lines = []
    for view, resp in failed:
        try:
            message = json.loads(resp.body or b"{}").get("message") or resp.body.decode(errors="replace")
        except (ValueError, AttributeError):
            message = resp.body.decode(errors="replace")
        lines.append(f"{view.name}: {message}")
    return ApiError(statuses.pop() if len(statuses) == 1 else 500, "\n".join(lines))


async def remove_image(ctx: ManagerContext, req: Request) -> Response:
    """Removes the image from every node that holds it, at once; the engine's answers are merged,
    and any node's refusal is the answer, naming the node (classic swarm's Cluster.RemoveImages)."""
    name = req.params["name"]
    nodes = nodes_with_image(ctx.cluster, name)
    results = await asyncio.gather(*(relay.unary(req, v.client, f"/images/{relay.quote(name)}") for v in nodes))
    for view in nodes:
        await ctx.cluster.refresh_images(view)
    error = _merged_errors(nodes, results)
    if error is not None:
        raise error
    merged = []
    for resp in results:
        merged += json.loads(resp.body or b"[]")
    return json_response(merged)


async def tag_image(ctx: ManagerContext, req: Request) -> Response:
    """Tags the image on every node that holds it; any node's refusal is the answer, naming the node
    (classic swarm's Cluster.TagImage)."""
    name = req.params["name"]
    nodes = nodes_with_image(ctx.cluster, name)
    results = await asyncio.gather(*(relay.unary(req, v.client, f"/images/{relay.quote(name)}/tag") for v in nodes))
    for view in nodes:
        await ctx.cluster.refresh_images(view)
    error = _merged_errors(nodes, results)
    if error is not None:
        raise error
    return Response(201)


async def image_history(ctx: ManagerContext, req: Request) -> Response:
    name = req.params["name"]
    nodes = nodes_with_image(ctx.cluster, name)
    return await relay.unary(req, nodes[0].client, f"/images/{relay.quote(name)}/history")


async def push_image(ctx: ManagerContext, req: Request):
    """Pushes from the first node holding `name:tag` (or `name` when no node has that tag)."""
    name = req.params["name"]
    nodes = nodes_with_image(ctx.cluster, name, req.arg("tag"))
    return await relay.stream(req, nodes[0].client, f"/images/{relay.quote(name)}/push", hijack=False)


async def commit_container(ctx: ManagerContext, req: Request) -> Response:
    """Commits on the container's node, which then holds the new image."""
    ref = req.arg("container")
    if not ref:
        raise ApiError(400, "container is required")
    rec, view = container_and_node(ctx.cluster, ref)
    query = "&".join(f"{k}={relay.quote(v if k != 'container' else rec.id)}" for k, vs in req.query.items() for v in vs)
    resp = await relay.unary(req, view.client, "/commit", query=query)
    await ctx.cluster.refresh_images(view)
    return resp


async def prune_images(ctx: ManagerContext, req: Request) -> Response:
    return await relay.prune_everywhere(req, ctx.cluster.healthy_nodes(), "/images/prune", "ImagesDeleted",
                                        after=ctx.cluster.refresh_images)


async def save_image(ctx: ManagerContext, req: Request):
    name = req.params["name"]
    nodes = nodes_with_image(ctx.cluster, name)
    return await relay.stream(req, nodes[0].client, f"/images/{relay.quote(name)}/get", hijack=False)


async def save_images(ctx: ManagerContext, req: Request):
    """One archive of every named image, from a node holding them all."""
    names = req.args("names")
    if not names:
        raise ApiError(400, "names is required")
    nodes = [v for v in image_holders(ctx.cluster, names[0])
             if all(any(image_matches(i, n) for i in v.images) for n in names)]
    if not nodes:
        # classic swarm's text (api/handlers.go getImages), the names as Go prints a list
        raise ApiError(404, f"Unable to find a healthy engine containing all images: [{' '.join(names)}]")
    return await relay.stream(req, nodes[0].client, "/images/get", hijack=False)


async def load_images(ctx: ManagerContext, req: Request) -> Response:
    """Loads the archive on every healthy node, so the image is wherever containers may land."""
    targets = healthy_nodes(ctx.cluster, "to load on")
    results = await asyncio.gather(*(relay.unary(req, v.client, "/images/load") for v in targets))
    for view, resp in zip(targets, results):
        if resp.status >= 400:
            return resp
        await ctx.cluster.refresh_images(view)
    return results[0]


async def search_images(ctx: ManagerContext, req: Request) -> Response:
    return await relay.unary(req, healthy_nodes(ctx.cluster, "to search from")[0].client, "/images/search")


async def prune_build_cache(ctx: ManagerContext, req: Request) -> Response:
    """`docker builder prune` / `docker system prune`: every healthy node's build cache."""
    return await relay.prune_everywhere(req, ctx.cluster.healthy_nodes(), "/build/prune", "CachesDeleted")
