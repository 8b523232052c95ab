"""What every API handler reads: the cluster view, the scheduler, the placement and the manager's settings."""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from swarmd.manager.cluster import ClusterView
from swarmd.manager.placement import Placement
from swarmd.manager.scheduler import Scheduler

VERSION = "0.1.0"
API_VERSION = "1.41"
MIN_API_VERSION = "1.12"


@dataclass
class ManagerContext:
    cluster: ClusterView
    scheduler: Scheduler
    role: str = "primary"                 # "primary" or "replica" (see manager.election)
    primary_addr: str = ""                # the primary's advertised API address, when known
    advertise: str = ""                   # this manager's own advertised API address (--advertise)
    name: str = field(default_factory=socket.gethostname)
    started_at: float = field(default_factory=time.time)
    placement: Placement = field(init=False)   # creates containers; the rescheduler shares it

    def __post_init__(self) -> None:
        self.placement = Placement(self.cluster, self.scheduler)
