"""The seam between the agent and its local engine: the `LocalEngine` Protocol and the container actions.

`AgentService`, `NodeInfoSource` and the agent daemon drive whatever engine they are given through
exactly these members. Two engines implement them: `agent.sdk_engine.SdkEngine`, the node's real
dockerd (docker SDK for lifecycle calls, asyncio over the engine socket for reads and relays), and
`agent.hollow.HollowEngine`, an in-memory engine for the scale bench's hollow nodes. Failures are
raised as `agent.engine.EngineError` carrying the engine's HTTP status and message.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Protocol, runtime_checkable

from swarmd.agent.engine import EngineConnection, EngineResponse

# what `LocalEngine.container_action` accepts; the Agent RPC's ContainerActionRequest.Action
# enum has one ACTION_<NAME> value for each
CONTAINER_ACTIONS = ("start", "stop", "kill", "restart", "pause", "unpause", "remove")


@runtime_checkable
class LocalEngine(Protocol):
    """The engine one agent serves: its facts, container lifecycle, relayed calls and events."""

    url: str
    """Where the engine is, for logs (`unix:///var/run/docker.sock`, `hollow://NAME`)."""

    same_clock: bool
    """True when the engine's event times (`timeNano`) come from this process's clock, so that
    the agent may stamp RPCs with engine-clock times (swarmd.common.engine_clock)."""

    async def check(self) -> str:
        """Pings the engine: an empty string when it answers, else why it does not."""
        ...

    async def info(self) -> bytes:
        """The engine's `GET /info` document, as JSON bytes."""
        ...

    async def version(self) -> bytes:
        """The engine's `GET /version` document, as JSON bytes."""
        ...

    async def list_containers(self, all: bool, filters_json: bytes = b"") -> bytes:
        """`GET /containers/json`: running containers, or every one when `all`; `filters_json` is
        the Engine API's filters (list or map values), empty for none. A JSON array as bytes."""
        ...

    async def container_ids(self) -> list[str]:
        """The ID of every container, in `list_containers`' order (newest first): what a node's
        sync reads the documents of."""
        ...

    async def inspect_container(self, container_id: str) -> bytes:
        """`GET /containers/{id}/json` for an ID, ID prefix or name, as JSON bytes (404 if none)."""
        ...

    async def inspect_containers(self, container_ids: list[str]) -> list[bytes | None]:
        """`inspect_container` of each of `container_ids`, in their order: None for one the engine
        no longer has (404). Any other failure is raised, once no read is left running. What a
        node's sync reads: each engine reads many its own way (the real one several at a time)."""
        ...

    async def create_container(self, name: str, config_json: bytes) -> dict:
        """`POST /containers/create` with `config_json` as body; `name` empty lets the engine pick.
        Returns the engine's answer (`{"Id": ..., "Warnings": [...]}`); 404 "No such image" when the
        image is not on the node."""
        ...

    async def container_action(self, container_id: str, action: str, params: dict[str, str]) -> int:
        """Runs one of CONTAINER_ACTIONS with its Engine API query parameters (`t`, `signal`,
        `force`, `v`, ...); returns the engine's status (204 done, 304 nothing to do)."""
        ...

    async def pull_image(self, reference: str) -> None:
        """Pulls `reference` (`name[:tag]`, `:latest` when untagged) until the image is on the node."""
        ...

    async def request(self, method: str, path: str, query: str = "", body: bytes = b"",
                      headers: Iterable[tuple[str, str]] = ()) -> EngineResponse:
        """Any Engine API call answered with one body; every status comes back as it is."""
        ...

    async def open(self, method: str, path: str, query: str = "", body: bytes = b"",
                   headers: Iterable[tuple[str, str]] = ()) -> EngineConnection:
        """Sends a streamed or hijacking call and reads the response head; the caller reads the
        body (or pumps the hijacked connection) and closes the connection."""
        ...

    def events(self, since_unix_nano: int = 0) -> AsyncIterator[bytes]:
        """The engine's event stream, one event's JSON at a time, replayed from `since_unix_nano`
        when it is above 0; it runs until the engine ends it or the caller stops reading."""
        ...
