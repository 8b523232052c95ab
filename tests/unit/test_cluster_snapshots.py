"""A node's snapshot in the manager's view: one object while nothing changes, placements in flight included."""
from swarmd.manager.cluster import ClusterView, NodeView
from swarmd.manager.scheduler import ContainerSpec, Scheduler
from swarmd.manager.scheduler.snapshot import ContainerSnapshot
from swarmd.proto.swarm.v1 import types_pb2


def view(name: str) -> NodeView:
    node = types_pb2.Node(state=types_pb2.NODE_STATE_HEALTHY)
    node.info.id, node.info.name, node.info.addr = f"ID-{name}", name, f"{name}:4100"
    node.info.cpus, node.info.memory_bytes = 4, 8 << 30
    return NodeView(node=node, client=None, connected=True)


def placeholder(name: str) -> ContainerSnapshot:
    return ContainerSnapshot(id=f"pending:{name}", name=name, image="busybox", image_id="", state="created",
                             labels={}, ports=(), cpus=0.0, memory=0)


def test_the_snapshot_is_one_object_until_the_node_or_its_pending_placements_change():
    v = view("n1")
    base = v.snapshot()
    assert v.snapshot() is base
    a = placeholder("a")
    v.pending.append(a)
    with_a = v.snapshot()
    assert with_a is not base and [c.name for c in with_a.containers] == ["a"]
    assert v.snapshot() is with_a                      # same pending: the same object
    v.pending.append(placeholder("b"))
    with_ab = v.snapshot()
    assert [c.name for c in with_ab.containers] == ["a", "b"] and v.snapshot() is with_ab
    v.pending.clear()
    assert v.snapshot() is base
    v.pending.append(a)
    assert v.snapshot() is not with_a and [c.name for c in v.snapshot().containers] == ["a"]
    v.changed()                                        # the node itself changed: a new base
    fresh = v.snapshot()
    assert fresh is not base and v.snapshot() is fresh


def test_placements_in_flight_steer_the_next_decision():
    cluster = ClusterView(client_factory=lambda n: None)
    for name in ("n1", "n2"):
        v = view(name)
        cluster.nodes[v.id] = v
    scheduler = Scheduler()
    spec = ContainerSpec.from_create({"Image": "busybox"}, None)
    first = scheduler.select(spec, cluster.snapshots())
    assert first.name == "n1"
    cluster.nodes[first.id].pending.append(placeholder("x"))
    assert scheduler.select(spec, cluster.snapshots()).name == "n2"
    cluster.nodes["ID-n2"].pending.extend([placeholder("y"), placeholder("z")])
    assert scheduler.select(spec, cluster.snapshots()).name == "n1"
