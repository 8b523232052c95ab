"""An index of container records by a key that several records may share.

Classic's swarm ID is shared by a rescheduled container and its stale copy on a lost node, and the
12-character short form of an engine ID could, in principle, be shared by two containers. Usually
one record holds a key, so the index keeps that record itself and makes a dict (container ID ->
record) only for a key held by several: a dict per key would cost every container one.
"""
from __future__ import annotations

from swarmd.manager.container_records import ContainerRecord


class SharedKeyIndex:
    """key -> the records holding it."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: dict[str, ContainerRecord | dict[str, ContainerRecord]] = {}

    def add(self, key: str, rec: ContainerRecord) -> None:
        held = self._held.get(key)
        if isinstance(held, dict):
            held[rec.id] = rec
        elif held is None or held.id == rec.id:
            self._held[key] = rec
        else:
            self._held[key] = {held.id: held, rec.id: rec}

    def discard(self, key: str, rec: ContainerRecord) -> None:
        """Drops `rec` under `key` if it is the record held there (a newer one is left alone)."""
        held = self._held.get(key)
        if held is rec:
            del self._held[key]
        elif isinstance(held, dict) and held.get(rec.id) is rec:
            del held[rec.id]
            if len(held) == 1:
                self._held[key] = next(iter(held.values()))

    def get(self, key: str) -> tuple[ContainerRecord, ...]:
        held = self._held.get(key)
        if held is None:
            return ()
        return tuple(held.values()) if isinstance(held, dict) else (held,)

    def __len__(self) -> int:
        return len(self._held)
