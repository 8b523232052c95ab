"""Placement policy: which node a new container goes to. Pure code over immutable snapshots."""
from swarmd.manager.scheduler.container_spec import ContainerSpec, Dependency, normalized_create_body
from swarmd.manager.scheduler.errors import InvalidSpec, NoSuitableNode, SchedulerError
from swarmd.manager.scheduler.scheduler import FILTERS, STRATEGIES, Scheduler
from swarmd.manager.scheduler.snapshot import ContainerSnapshot, ImageSnapshot, NodeSnapshot, PortBinding

__all__ = [
    "Scheduler", "ContainerSpec", "Dependency", "SchedulerError", "InvalidSpec", "NoSuitableNode",
    "normalized_create_body", "ContainerSnapshot", "ImageSnapshot", "NodeSnapshot", "PortBinding",
    "FILTERS", "STRATEGIES",
]
