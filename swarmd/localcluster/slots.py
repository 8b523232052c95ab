"""Slots keep concurrent local clusters apart.

A slot is a small integer held through an exclusive lock file for the life of the process.
From it come the cluster's bridge names, bridge subnets and loopback addresses, so two test
runs (or a test run and `swarm up`) on one machine never collide.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

STATE_ROOT = Path(os.environ.get("SWARMD_LOCAL_ROOT", "/tmp/swarmd-local"))
MAX_SLOTS = 40
MAX_ENGINES = 6   # per slot: 40 * 6 = 240 bridge subnets 172.31.1-240.0/24
# and 240 address pools 10.1-240.0.0/16 for the engines' user-defined networks


@dataclass
class Slot:
    index: int
    root: Path
    _fd: int

    def bridge_name(self, engine: int) -> str:
        return f"swd{self.index}e{engine}"

    def _engine_number(self, engine: int) -> int:
        return self.index * MAX_ENGINES + engine + 1

    def bridge_cidr(self, engine: int) -> str:
        return f"172.31.{self._engine_number(engine)}.1/24"

    def address_pool(self, engine: int) -> str:
        """The engine's own default address pool for user-defined networks: no two engines, of
        this lab or another, ever compete for the engine defaults, and every bridge whose address
        lies in it is known to be this engine's."""
        return f"10.{self._engine_number(engine)}.0.0/16"

    def host_ip(self, engine: int) -> str:
        """Loopback address an engine publishes ports on: unique per slot and engine."""
        return f"127.0.{100 + self.index}.{engine + 1}"

    @property
    def lock_fd(self) -> int:
        """The open lock file: a process that inherits it holds the slot for as long as it lives."""
        return self._fd

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):   # only when empty: nothing of a caller's is lost
                self.root.rmdir()
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


def acquire(prefix: str = "slot") -> Slot:
    """The first free slot. Slot numbers are one space whatever the prefix (bridges and addresses
    come from the number); the prefix only names the slot's directory."""
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    for i in range(MAX_SLOTS):
        fd = os.open(STATE_ROOT / f"slot-{i}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        root = STATE_ROOT / f"{prefix}-{i}"
        root.mkdir(parents=True, exist_ok=True)
        return Slot(i, root, fd)
    raise RuntimeError(f"all {MAX_SLOTS} local-cluster slots under {STATE_ROOT} are in use")
