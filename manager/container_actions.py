"""The container actions the manager asks an agent for: each one's value on the wire and the query
parameters a client may pass with it. The API routes, the agent client and the handlers read them here."""
from __future__ import annotations

from dataclasses import dataclass

from swarmd.proto.swarm.v1 import agent_pb2

_WIRE = agent_pb2.ContainerActionRequest


@dataclass(frozen=True)
class ContainerAction:
    name: str
    wire: int                  # ContainerActionRequest.Action, as agent.proto numbers it
    params: tuple[str, ...]    # the engine's query parameters for it, passed through when given


ACTIONS: dict[str, ContainerAction] = {a.name: a for a in (
    ContainerAction("start", _WIRE.ACTION_START, ()),
    ContainerAction("stop", _WIRE.ACTION_STOP, ("t", "signal")),
    ContainerAction("kill", _WIRE.ACTION_KILL, ("signal",)),
    ContainerAction("restart", _WIRE.ACTION_RESTART, ("t", "signal")),
    ContainerAction("pause", _WIRE.ACTION_PAUSE, ()),
    ContainerAction("unpause", _WIRE.ACTION_UNPAUSE, ()),
    ContainerAction("remove", _WIRE.ACTION_REMOVE, ("force", "v", "link")),
)}
