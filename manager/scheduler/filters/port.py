"""A fixed host port can be bound by one container per node (per protocol and address).

Live containers count (running, paused, restarting, created); a stopped one holds no port,
as on the engine. With `--net=host` the container's exposed ports are its host ports.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from swarmd.manager.scheduler.errors import unsatisfied

if TYPE_CHECKING:
    from swarmd.manager.scheduler.container_spec import ContainerSpec
    from swarmd.manager.scheduler.snapshot import NodeSnapshot, PortBinding


def describe(binding: PortBinding, host_mode: bool) -> str:
    """`port 8080 (Bridge mode)`, `port 127.0.0.1:53/udp (Bridge mode)`, `port 80/tcp (Host mode)`."""
    if host_mode:
        return f"port {binding.host_port}/{binding.protocol} (Host mode)"
    where = str(binding.host_port) if binding.all_interfaces else f"{binding.host_ip}:{binding.host_port}"
    proto = "" if binding.protocol == "tcp" else f"/{binding.protocol}"
    return f"port {where}{proto} (Bridge mode)"


class PortFilter:
    name = "port"

    def filter(self, spec: ContainerSpec, nodes: list[NodeSnapshot], *, soft: bool,
               cluster: list[NodeSnapshot]) -> list[NodeSnapshot]:
        host_mode = spec.network_mode == "host"
        for i, wanted in enumerate(spec.ports):
            free = [n for n in nodes if not n.index.port_in_use(wanted)]
            if not free:
                raise unsatisfied(self.name, [describe(p, host_mode) for p in spec.ports[:i + 1]])
            nodes = free
        return nodes

    def node_test(self, spec: ContainerSpec):
        wanted = spec.ports
        if not wanted:
            return None
        if len(wanted) == 1:
            one = wanted[0]
            return lambda node: not node.index.port_in_use(one)
        return lambda node: not any(map(node.index.port_in_use, wanted))
