"""The plain, immutable picture of the cluster that one scheduling decision reads.

Snapshots are frozen dataclasses (without slots, so `NodeSnapshot(**{**snap.__dict__, ...})` copies
one). What the filters and strategies derive from a node (reservations, bound ports, container
names, image references) is computed once per snapshot, lazily, and kept in a slot inherited from
`_Indexed`: it lives outside the instance `__dict__`, so copying a snapshot through its `__dict__`
never carries a stale index along.
"""
from __future__ import annotations

import itertools
import operator
from dataclasses import dataclass


# As in classic swarm, a container holds its fixed host ports for as long as it exists, stopped or
# not: starting it again needs them. Only one being removed gives them back.
PORT_FREE_STATES = frozenset({"removing"})
# states in which a container binds nothing right now (so a replacement may take its ports)
NOT_RUNNING_STATES = frozenset({"created", "exited", "dead"})


# host addresses that mean every address of the host
ALL_INTERFACES = frozenset({"", "0.0.0.0", "::"})


@dataclass(frozen=True)
class PortBinding:
    """A host port a container binds (or asks to bind): `host_ip` "0.0.0.0"/"" means every address."""

    host_ip: str
    host_port: int
    protocol: str

    @property
    def all_interfaces(self) -> bool:
        return self.host_ip in ALL_INTERFACES

    def conflicts_with(self, other: PortBinding) -> bool:
        """Both cannot be bound on one host at once (same port and protocol, overlapping addresses)."""
        return (self.host_port == other.host_port and self.protocol == other.protocol
                and (self.host_ip == other.host_ip or self.all_interfaces or other.all_interfaces))


@dataclass(frozen=True)
class ContainerSnapshot:
    id: str
    name: str                       # without the leading "/"
    image: str                      # the reference as requested
    image_id: str                   # "sha256:…"
    state: str                      # "running", "exited", "created", …
    labels: dict[str, str]
    ports: tuple[PortBinding, ...]  # host ports it binds
    cpus: float
    memory: int


@dataclass(frozen=True)
class ImageSnapshot:
    id: str
    repo_tags: tuple[str, ...]


def normalize_reference(ref: str) -> str:
    """`docker.io/library/busybox:latest` and `busybox:latest` name the same image."""
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix):]
            break
    if ref.startswith("library/"):
        ref = ref[len("library/"):]
    return ref


_HEX = frozenset("0123456789abcdef")


def is_hex(text: str) -> bool:
    """Could be (a prefix of) a container or image ID."""
    return bool(text) and _HEX.issuperset(text)


def repository_of(ref: str) -> str:
    """The reference without its tag or digest: `host:5000/app:1.0` -> `host:5000/app`."""
    ref = ref.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    return ref[:colon] if colon > slash else ref


_SERIALS = itertools.count(1)
_CPUS = operator.attrgetter("cpus")
_MEMORY = operator.attrgetter("memory")
_PORTS = operator.attrgetter("ports")


class NodeIndex:
    """What decisions read about one node, derived from its snapshot once.

    `serial` is unique to the snapshot the index belongs to (never reused, even after the
    snapshot is gone): what a decision remembered about a node is still valid while the node's
    snapshot has the same serial.
    """

    __slots__ = ("serial", "count", "reserved_cpus", "reserved_memory", "load", "_name", "_containers", "_images", "_labels", "_ports", "_names", "_ids",
                 "_id_set", "_image_refs", "_image_ids", "_label_values", "_slots")

    def __init__(self, node: NodeSnapshot):
        self.serial = next(_SERIALS)
        # the parts read later, not the node itself: no reference cycle through the node's slot
        self._name = node.name
        self._containers = containers = node.containers
        self._images = node.images
        self._labels = node.labels
        self.count = len(containers)
        # map over attrgetter: the sums in C, in the same order as a loop would add them
        self.reserved_cpus = float(sum(map(_CPUS, containers)))
        self.reserved_memory = int(sum(map(_MEMORY, containers)))
        # share of the node already reserved: CPU share plus memory share (0 for unknown totals)
        self.load = ((self.reserved_cpus / node.total_cpus if node.total_cpus > 0 else 0.0)
                     + (self.reserved_memory / node.total_memory if node.total_memory > 0 else 0.0))
        self._ports: dict[tuple[int, str], frozenset[str]] = {}
        self._names: frozenset[str] | None = None
        self._ids: tuple[str, ...] | None = None
        self._id_set: frozenset[str] | None = None
        self._image_refs: frozenset[str] | None = None
        self._image_ids: tuple[str, ...] | None = None
        self._label_values: dict[str, frozenset[str]] = {}
        self._slots: object = _UNSET

    def bound_ips(self, host_port: int, protocol: str) -> frozenset[str]:
        """The host addresses the node's containers hold for one port and protocol ("0.0.0.0"
        standing for every address).

        Every container holds its ports, a stopped one included (see PORT_FREE_STATES), and so
        does a placement in flight (created first). Computed per port asked, not for every port
        of the node: a decision asks about one or two, and a node's snapshot is replaced (and
        this index built again) on every change of its containers."""
        key = (host_port, protocol)
        ips = self._ports.get(key)
        if ips is None:
            found = set()
            for c in filter(_PORTS, self._containers):     # most containers bind no host port
                if c.state in PORT_FREE_STATES:
                    continue
                for p in c.ports:
                    if p.host_port == host_port and p.protocol == protocol:
                        found.add("0.0.0.0" if p.host_ip in ALL_INTERFACES else p.host_ip)
            ips = self._ports[key] = frozenset(found)
        return ips

    def port_in_use(self, wanted: PortBinding) -> bool:
        """A container on the node already binds a port that conflicts with `wanted`."""
        ips = self.bound_ips(wanted.host_port, wanted.protocol)
        if not ips:
            return False
        return wanted.host_ip in ALL_INTERFACES or "0.0.0.0" in ips or wanted.host_ip in ips

    def port_in_use_except(self, wanted: PortBinding, replaced: tuple[str, ...],
                           identity: tuple[tuple[str, str], ...] = ()) -> bool:
        """`port_in_use`, not counting a container that is not running and is the one a recreate
        replaces: named by `replaced` (name, ID or ID prefix), or carrying every label of
        `identity` (see filters/port.py)."""
        for c in self._containers:
            if c.state in PORT_FREE_STATES or (c.state in NOT_RUNNING_STATES and _replaced(c, replaced, identity)):
                continue
            if any(wanted.conflicts_with(p) for p in c.ports):
                return True
        return False

    @property
    def container_names(self) -> frozenset[str]:
        if self._names is None:
            self._names = frozenset(c.name for c in self._containers if c.name)
        return self._names

    @property
    def container_ids(self) -> tuple[str, ...]:
        if self._ids is None:
            self._ids = tuple(c.id for c in self._containers)
        return self._ids

    @property
    def container_id_set(self) -> frozenset[str]:
        if self._id_set is None:
            self._id_set = frozenset(self.container_ids)
        return self._id_set

    @property
    def image_refs(self) -> frozenset[str]:
        """Repo tags and repositories of the node's images, as given and normalized."""
        if self._image_refs is None:
            refs: set[str] = set()
            for img in self._images:
                for tag in img.repo_tags:
                    if tag == "<none>:<none>":
                        continue
                    for t in (tag, normalize_reference(tag)):
                        refs.add(t)
                        refs.add(repository_of(t))
            self._image_refs = frozenset(refs)
        return self._image_refs

    @property
    def image_ids(self) -> tuple[str, ...]:
        """Image IDs as the engine gives them ("sha256:…") and without the algorithm."""
        if self._image_ids is None:
            ids: list[str] = []
            for img in self._images:
                if img.id:
                    ids.append(img.id)
                    if ":" in img.id:
                        ids.append(img.id.split(":", 1)[1])
            self._image_ids = tuple(ids)
        return self._image_ids

    def has_image_id(self, ref: str) -> bool:
        """`ref` is the ID, or a prefix of the ID, of one of the node's images (with or without "sha256:")."""
        hexpart = ref.split(":", 1)[1] if ref.startswith("sha256:") else ref
        if not is_hex(hexpart):
            return False
        return any(i.startswith(ref) for i in self.image_ids)

    def label_values(self, key: str) -> frozenset[str]:
        """The values the node's containers carry for label `key` (containers without it add nothing)."""
        values = self._label_values.get(key)
        if values is None:
            values = frozenset(c.labels[key] for c in self._containers if key in c.labels)
            self._label_values[key] = values
        return values

    @property
    def container_slots(self) -> int | None:
        """The node's `containerslots` label as a number; None when absent or not a number."""
        if self._slots is _UNSET:
            raw = self._labels.get("containerslots")
            try:
                self._slots = int(raw) if raw is not None else None
            except ValueError:
                self._slots = None
        return self._slots  # type: ignore[return-value]

    def has_container(self, ref: str) -> bool:
        """The node holds a container named `ref`, with ID `ref` or with a unique ID prefix `ref`."""
        ref = ref.lstrip("/")
        if not ref:
            return False
        if "/" in ref:   # node/name
            node_name, _, ref = ref.partition("/")
            if node_name != self._name:
                return False
        if ref in self.container_names or ref in self.container_id_set:
            return True
        return is_hex(ref) and any(cid.startswith(ref) for cid in self.container_ids)


_UNSET = object()


def _replaced(container: ContainerSnapshot, refs: tuple[str, ...], identity: tuple[tuple[str, str], ...]) -> bool:
    if identity and all(container.labels.get(k) == v for k, v in identity):
        return True
    for ref in refs:
        ref = ref.lstrip("/")
        if ref and (ref == container.name or (is_hex(ref) and container.id.startswith(ref))):
            return True
    return False


class _Indexed:
    """Gives subclasses one slot, outside `__dict__`, for their derived index."""

    __slots__ = ("_scheduler_index",)

    def __getstate__(self):
        # copies and pickles carry the fields only; the copy derives its own index
        return self.__dict__


@dataclass(frozen=True)
class NodeSnapshot(_Indexed):
    id: str
    name: str
    addr: str
    labels: dict[str, str]
    healthy: bool
    total_cpus: float
    total_memory: int
    containers: tuple[ContainerSnapshot, ...]
    images: tuple[ImageSnapshot, ...]
    engine_version: str
    os: str
    kernel_version: str
    operating_system: str
    architecture: str
    availability: str = "active"    # intent (`docker node update --availability`): active, pause, drain

    @classmethod
    def of(cls, fields: dict, **changes) -> NodeSnapshot:
        """The snapshot with `fields` (every field, by name, as `__dict__` holds them) and `changes`
        over them, made without the frozen dataclass's `__init__`: its `object.__setattr__` per
        field cost a changed node more than the rest of its new snapshot, on every decision that
        followed a change of its containers."""
        snap = object.__new__(cls)
        held = snap.__dict__
        held.update(fields)
        held.update(changes)
        return snap

    @property
    def index(self) -> NodeIndex:
        try:
            return self._scheduler_index
        except AttributeError:
            idx = NodeIndex(self)
            object.__setattr__(self, "_scheduler_index", idx)
            return idx

    @property
    def serial(self) -> int:
        """Identifies this snapshot object among every snapshot of the process (see NodeIndex)."""
        return self.index.serial

    @property
    def reserved_cpus(self) -> float:
        """CPUs reserved by every container on the node, whatever its state."""
        return self.index.reserved_cpus

    @property
    def reserved_memory(self) -> int:
        """Memory (bytes) reserved by every container on the node, whatever its state."""
        return self.index.reserved_memory


def serials(nodes: list[NodeSnapshot]) -> list[int]:
    """The serials of `nodes`, in order (indexing the nodes not indexed yet)."""
    try:
        return list(map(_SERIAL_OF, nodes))
    except AttributeError:
        pass
    # some snapshots are new (usually one or two): index those, then read every serial
    for node in nodes:
        try:
            node._scheduler_index
        except AttributeError:
            node.index
    return list(map(_SERIAL_OF, nodes))


_SERIAL_OF = operator.attrgetter("_scheduler_index.serial")
