"""`/images/*` across nodes: one row per image, with the nodes that hold it."""
from __future__ import annotations

import asyncio
import json
import urllib.parse

from manager.api import relay
from manager.api.context import ManagerContext
from manager.httpd.errors import ApiError
from manager.httpd.request import Request
from manager.httpd.response import Response, json_response


def _matches(img: dict, ref: str) -> bool:
    if img.get("Id") == ref or img.get("Id", "").removeprefix("sha256:").startswith(ref.removeprefix("sha256:")):
        return len(ref.removeprefix("sha256:")) >= 4
    tags = img.get("RepoTags") or []
    return ref in tags or (":" not in ref.rsplit("/", 1)[-1] and f"{ref}:latest" in tags)


def register(router, ctx: ManagerContext) -> None:
    cluster = ctx.cluster

    def holders(ref: str):
        return [v for v in cluster.nodes.values() if v.healthy and any(_matches(i, ref) for i in v.images)]

    async def list_images(req: Request) -> Response:
        """Each healthy node lists with the client's own filters; rows are merged by image ID."""
        req.filters()          # malformed filters get a 400 before any node is asked
        nodes = cluster.healthy_nodes()
        query = urllib.parse.urlencode([(k, v) for k, vs in req.query.items() for v in vs])
        answers = await asyncio.gather(*(v.client.engine_call("GET", "/images/json", query) for v in nodes),
                                       return_exceptions=True)
        merged: dict[str, dict] = {}
        for view, resp in zip(nodes, answers):
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

    async def inspect(req: Request) -> Response:
        name = req.params["name"]
        nodes = holders(name)
        if not nodes:
            raise ApiError(404, f"No such image: {name}")
        resp = await relay.unary(req, nodes[0].client, f"/images/{relay.quote(name)}/json")
        if resp.status == 200:
            doc = json.loads(resp.body)
            doc["Nodes"] = [v.name for v in nodes]
            return json_response(doc)
        return resp

    async def pull(req: Request):
        """Pulls on every healthy node (or on `?node=NAME` only), relaying progress as it comes.

        Each progress line names its node; a node that fails reports an in-band error line
        (`error` and `errorDetail`, as the engine does) while the others carry on."""
        if req.arg("fromSrc"):
            raise ApiError(501, "image import through the manager is not supported")
        if not req.arg("fromImage"):
            raise ApiError(400, "fromImage is required")
        targets = cluster.healthy_nodes()
        only = req.arg("node")
        if only:
            targets = [v for v in targets if v.name == only]
            if not targets:
                raise ApiError(404, f"No such node: {only}")
        if not targets:
            raise ApiError(500, "no healthy node to pull on")
        query = "&".join(f"{k}={relay.quote(v)}" for k, vs in req.query.items() if k != "node" for v in vs)
        writer = await req.start_stream(200, "application/json")
        lock = asyncio.Lock()

        async def emit(doc: dict) -> None:
            async with lock:
                await writer.write(json.dumps(doc).encode() + b"\r\n")

        async def one(view) -> None:
            try:
                async for doc in relay.json_lines(req, view.client, "/images/create", query):
                    if isinstance(doc, dict):
                        if doc.get("id") is not None:
                            doc["id"] = f"{view.name}: {doc['id']}"
                        elif doc.get("status"):
                            doc["status"] = f"{view.name}: {doc['status']}"
                        elif doc.get("error"):
                            doc["error"] = f"{view.name}: {doc['error']}"
                            doc["errorDetail"] = {"message": doc["error"]}
                    await emit(doc)
            except ApiError as err:
                message = f"{view.name}: {err.message}"
                await emit({"error": message, "errorDetail": {"message": message}})
            try:
                await cluster.refresh_images(view)
            except ApiError:
                pass

        await asyncio.gather(*(one(v) for v in targets))
        await writer.close()
        return None

    async def remove(req: Request) -> Response:
        """Removes the image from every node that holds it; the engine's answers are merged."""
        name = req.params["name"]
        nodes = holders(name)
        if not nodes:
            raise ApiError(404, f"No such image: {name}")
        results = await asyncio.gather(*(relay.unary(req, v.client, f"/images/{relay.quote(name)}") for v in nodes))
        merged = []
        for view, resp in zip(nodes, results):
            if resp.status != 200:
                return resp
            merged += json.loads(resp.body or b"[]")
            await cluster.refresh_images(view)
        return json_response(merged)

    async def tag(req: Request) -> Response:
        name = req.params["name"]
        nodes = holders(name)
        if not nodes:
            raise ApiError(404, f"No such image: {name}")
        for view in nodes:
            resp = await relay.unary(req, view.client, f"/images/{relay.quote(name)}/tag")
            if resp.status >= 400:
                return resp
            await cluster.refresh_images(view)
        return Response(201)

    async def history(req: Request) -> Response:
        name = req.params["name"]
        nodes = holders(name)
        if not nodes:
            raise ApiError(404, f"No such image: {name}")
        return await relay.unary(req, nodes[0].client, f"/images/{relay.quote(name)}/history")

    async def push(req: Request):
        name = req.params["name"]
        nodes = holders(name if not req.arg("tag") else f"{name}:{req.arg('tag')}") or holders(name)
        if not nodes:
            raise ApiError(404, f"No such image: {name}")
        return await relay.stream(req, nodes[0].client, f"/images/{relay.quote(name)}/push", hijack=False)

    async def commit(req: Request) -> Response:
        ref = req.arg("container")
        if not ref:
            raise ApiError(400, "container is required")
        rec = cluster.find_container(ref)
        view = cluster.node_of(rec)
        query = "&".join(f"{k}={relay.quote(v if k != 'container' else rec.id)}" for k, vs in req.query.items() for v in vs)
        resp = await relay.unary(req, view.client, "/commit", query=query)
        await cluster.refresh_images(view)
        return resp

    async def prune(req: Request) -> Response:
        return await relay.prune_everywhere(req, cluster.healthy_nodes(), "/images/prune", "ImagesDeleted",
                                            after=cluster.refresh_images)

    async def save_one(req: Request):
        name = req.params["name"]
        nodes = holders(name)
        if not nodes:
            raise ApiError(404, f"No such image: {name}")
        return await relay.stream(req, nodes[0].client, f"/images/{relay.quote(name)}/get", hijack=False)

    async def save_many(req: Request):
        names = req.args("names")
        if not names:
            raise ApiError(400, "names is required")
        nodes = [v for v in holders(names[0]) if all(any(_matches(i, n) for i in v.images) for n in names)]
        if not nodes:
            raise ApiError(404, f"no single node holds all of: {', '.join(names)}")
        return await relay.stream(req, nodes[0].client, "/images/get", hijack=False)

    async def load(req: Request) -> Response:
        """Loads the archive on every healthy node, so the image is wherever containers may land."""
        targets = cluster.healthy_nodes()
        if not targets:
            raise ApiError(500, "no healthy node to load on")
        results = await asyncio.gather(*(relay.unary(req, v.client, "/images/load") for v in targets))
        for view, resp in zip(targets, results):
            if resp.status >= 400:
                return resp
            await cluster.refresh_images(view)
        return results[0]

    async def search(req: Request) -> Response:
        targets = cluster.healthy_nodes()
        if not targets:
            raise ApiError(500, "no healthy node to search from")
        return await relay.unary(req, targets[0].client, "/images/search")

    async def build_cache_prune(req: Request) -> Response:
        """`docker builder prune` / `docker system prune`: every healthy node's build cache."""
        return await relay.prune_everywhere(req, cluster.healthy_nodes(), "/build/prune", "CachesDeleted")

    router.add("POST", "/build/prune", build_cache_prune)
    router.add("GET", "/images/json", list_images)
    router.add("GET", "/images/search", search)
    router.add("GET", "/images/get", save_many)
    router.add("POST", "/images/load", load)
    router.add("GET", "/images/{name:path}/get", save_one)
    router.add("POST", "/images/prune", prune)
    router.add("POST", "/commit", commit)
    router.add("DELETE", "/images/{name:path}", remove)
    router.add("POST", "/images/{name:path}/tag", tag)
    router.add("GET", "/images/{name:path}/history", history)
    router.add("POST", "/images/{name:path}/push", push)
    router.add("POST", "/images/create", pull)
    router.add("GET", "/images/{name:path}/json", inspect)
