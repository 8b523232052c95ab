"""A fixed host port can be bound by one container per node (per protocol and address).

As in classic swarm, every container holds its host ports while it exists, a stopped one
included (starting it again needs them): the third `-p 80:80` on two nodes is refused. With
`--net=host` a container's exposed ports are its host ports.

One exception, so that docker-compose can recreate a service that publishes a port (classic
refused that): compose stops the old container, then creates its replacement with the same
project, service and container-number labels (and, when volumes carry over,
`affinity:container==<old ID>`). A container that is not running and that the new one replaces
(same compose labels, or named by a hard `affinity:container==`) does not hold its ports against it.
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


def _free_test(spec: ContainerSpec, wanted: PortBinding):
    replaced, identity = spec.replaces, spec.compose_identity
    if replaced or identity:
        return lambda node: not node.index.port_in_use_except(wanted, replaced, identity)
    return lambda node: not node.index.port_in_use(wanted)


class PortFilter:
    name = "port"

    def conditions(self, spec: ContainerSpec) -> list[str]:
        host_mode = spec.network_mode == "host"
        return [describe(p, host_mode) for p in spec.ports]

    def filter(self, spec: ContainerSpec, nodes: list[NodeSnapshot], *, soft: bool,
               cluster: list[NodeSnapshot]) -> list[NodeSnapshot]:
        for wanted in spec.ports:
            test = _free_test(spec, wanted)
            free = [n for n in nodes if test(n)]
            if not free:
                raise unsatisfied(self.name, self.conditions(spec))
            nodes = free
        return nodes

    def node_test(self, spec: ContainerSpec):
        wanted = spec.ports
        if not wanted:
            return None
        if spec.replaces or spec.compose_identity:
            tests = [_free_test(spec, w) for w in wanted]
            return lambda node: all(t(node) for t in tests)
        if len(wanted) == 1:
            one = wanted[0]
            return lambda node: not node.index.port_in_use(one)
        return lambda node: not any(map(node.index.port_in_use, wanted))
