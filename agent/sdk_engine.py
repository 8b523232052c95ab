"""The local engine driven with the `docker` SDK for engine facts and pulls; everything else on `Engine`.

The SDK is blocking, so each of its calls runs in a worker thread and the event loop never waits
on the engine. The calls on the hot path (container create and actions, the reads the manager
keeps verbatim: container lists and inspect documents) and relayed calls (any Engine API request,
streams, attach/exec hijacks, events) use the asyncio transport of `Engine`: they carry the
engine's own bytes, and a call costs 0.2 ms there against 0.9 ms through the SDK's thread and
request machinery.
"""
from __future__ import annotations

import asyncio
import json
import urllib.parse

import docker
import docker.errors
import requests.exceptions

from swarmd.agent.engine import API_VERSION, Engine, EngineError, EngineResponse, EngineUnreachable, error_message
from swarmd.agent.local_engine import CONTAINER_ACTIONS
from swarmd.common import logs
from swarmd.common.stage_times import stages

log = logs.get("agent.sdk_engine")

_POOL = 32
_TIMEOUT = 120


class SdkEngine(Engine):
    """The node's real engine, as the agent's `LocalEngine`: engine facts and pulls through the SDK;
    container lifecycle, reads and relays through `Engine`'s asyncio transport."""

    def __init__(self, url: str):
        super().__init__(url)
        self.api = docker.APIClient(base_url=self.url, version=API_VERSION, timeout=_TIMEOUT,
                                    max_pool_size=_POOL)

    async def _sdk(self, fn, *args, **kwargs):
        clock = stages(f"sdk-{getattr(fn, '__name__', 'call')}")

        def in_thread():
            clock.mark("handoff_in")
            try:
                return fn(*args, **kwargs)
            finally:
                clock.mark("call")

        try:
            result = await asyncio.to_thread(in_thread)
            clock.mark("handoff_out")
            clock.done(log)
            return result
        except docker.errors.APIError as exc:
            status = exc.response.status_code if exc.response is not None else 500
            raise EngineError(status, str(exc.explanation or exc)) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise EngineUnreachable(f"the engine at {self.url} does not answer: {exc}") from None
        except docker.errors.DockerException as exc:
            raise EngineError(500, str(exc)) from None

    async def check(self) -> str:
        try:
            await self._sdk(self.api.ping)
        except EngineError as exc:
            return exc.message
        return ""

    async def info(self) -> bytes:
        return json.dumps(await self._sdk(self.api.info)).encode()

    async def version(self) -> bytes:
        return json.dumps(await self._sdk(self.api.version, api_version=False)).encode()

    # container lifecycle: on the event loop over the keep-alive transport, the create body passed
    # on as the bytes it came as: no worker thread, no JSON decoded and encoded again (the hot
    # path of `docker run`; the SDK's thread and request machinery cost about a millisecond a call)

    async def _engine_ok(self, method: str, path: str, query: str = "", body: bytes = b"") -> EngineResponse:
        resp = await self.request(method, path, query, body)
        if resp.status >= 400:
            raise EngineError(resp.status, error_message(resp.body, resp.status))
        return resp

    async def create_container(self, name: str, config_json: bytes) -> dict:
        query = urllib.parse.urlencode([("name", name)]) if name else ""
        resp = await self._engine_ok("POST", "/containers/create", query, config_json or b"{}")
        try:
            created = json.loads(resp.body)
        except ValueError:
            raise EngineError(502, f"the engine answered a create with {resp.body[:80]!r}") from None
        return created if isinstance(created, dict) else {}

    async def container_action(self, container_id: str, action: str, params: dict[str, str]) -> int:
        """start/stop/…/remove; the engine's status comes back (204 done, 304 nothing to do)."""
        if action not in CONTAINER_ACTIONS:
            raise EngineError(400, f"unknown container action {action!r}")
        cid = urllib.parse.quote(container_id, safe="")
        method, path = ("DELETE", f"/containers/{cid}") if action == "remove" else ("POST", f"/containers/{cid}/{action}")
        return (await self._engine_ok(method, path, urllib.parse.urlencode(sorted(params.items())))).status

    async def pull_image(self, reference: str) -> None:
        from docker.utils import parse_repository_tag

        repository, tag = parse_repository_tag(reference)

        def pull() -> None:
            for line in self.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
                if isinstance(line, dict) and line.get("error"):
                    raise EngineError(500, str(line["error"]))

        await self._sdk(pull)

    def close(self) -> None:
        self.api.close()
        super().close()
