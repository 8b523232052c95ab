"""Engine-clock times across gRPC: when the engine was asked, or had answered, in trailing metadata.

The manager keeps a record of every container and re-reads one when an engine event shows a
change. When the engine runs under the agent's clock, the agent stamps InspectContainer with the
time it asked the engine (`engine-read-at-ns`) and CreateContainer and ContainerAction with the
time the engine had answered (`engine-done-at-ns`), in nanoseconds since the epoch. The manager
compares them with the events' `timeNano`: an event no later than a record's read time is already
shown by that record, so it needs no second read (read-your-writes without the round trip).
Documented with the RPCs in proto/swarm/v1/agent.proto.
"""
from __future__ import annotations

from collections.abc import Iterable

READ_AT = "engine-read-at-ns"     # InspectContainer: when the engine was asked
DONE_AT = "engine-done-at-ns"     # CreateContainer, ContainerAction: when the engine had answered


def trailing_metadata(key: str, unix_nano: int) -> tuple[tuple[str, str], ...]:
    """The agent's trailing metadata carrying one engine-clock time."""
    return ((key, str(unix_nano)),)


def time_from(metadata: Iterable[tuple[str, str | bytes]] | None, key: str) -> int:
    """The engine-clock time the agent sent under `key`, or 0 when it sent none (its engine does
    not run under the agent's clock)."""
    for name, value in metadata or ():
        if name == key and isinstance(value, str) and value.isdigit():
            return int(value)
    return 0
