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
    cluster.nodes[first.id].hold(placeholder("x"))
    assert scheduler.select(spec, cluster.snapshots()).name == "n2"
    cluster.nodes["ID-n2"].hold(placeholder("y"))
    cluster.nodes["ID-n2"].hold(placeholder("z"))
    assert scheduler.select(spec, cluster.snapshots()).name == "n1"


def test_the_cluster_keeps_its_snapshot_list_and_asks_again_only_the_nodes_that_changed():
    cluster = ClusterView(client_factory=lambda n: None)
    views = [view(f"n{i}") for i in range(4)]
    for v in views:
        cluster.nodes[v.id] = v
    first = cluster.snapshots()
    assert [s.name for s in first] == ["n0", "n1", "n2", "n3"]
    again = cluster.snapshots()
    assert again == first and again is not first and all(a is b for a, b in zip(again, first))
    views[2].hold(placeholder("x"))
    held = cluster.snapshots()
    assert [c.name for c in held[2].containers] == ["x"]
    assert all(held[i] is first[i] for i in (0, 1, 3))           # the others were not asked again
    views[1].changed()
    assert cluster.snapshots()[1] is not first[1]
    views[2].release(views[2].pending[0])
    assert cluster.snapshots()[2].containers == ()
    late = view("n4")
    cluster.nodes[late.id] = late                                   # a node joins
    assert [s.name for s in cluster.snapshots()] == ["n0", "n1", "n2", "n3", "n4"]
    cluster.nodes.pop(views[0].id)                                  # and one leaves
    assert [s.name for s in cluster.snapshots()] == ["n1", "n2", "n3", "n4"]


def test_a_snapshot_made_without_init_equals_one_made_with_it():
    from dataclasses import fields
    from swarmd.manager.scheduler.snapshot import NodeSnapshot
    made = view("n1").snapshot()
    values = {f.name: getattr(made, f.name) for f in fields(NodeSnapshot)}
    assert NodeSnapshot.of(values) == NodeSnapshot(**values)
    moved = NodeSnapshot.of(values, healthy=False, containers=(placeholder("a"),))
    assert moved == NodeSnapshot(**{**values, "healthy": False, "containers": (placeholder("a"),)})
    assert moved.index.count == 1 and made.index.count == 0     # each derives its own index


def test_a_change_of_containers_keeps_the_node_facts_and_a_replaced_fact_is_read_again():
    from swarmd.manager.intent import NodeIntent
    v = view("n1")
    v.info = {"NCPU": 8, "Labels": ["zone=a"], "KernelVersion": "6.1"}
    first = v.snapshot()
    assert first.labels["zone"] == "a" and first.total_cpus == 8.0
    v.pending.append(placeholder("a"))
    v.changed()                                        # its containers changed: facts are kept
    second = v.snapshot()
    assert second is not first and second.labels is first.labels
    v.node.state = types_pb2.NODE_STATE_UNHEALTHY        # health is read on every new snapshot
    v.changed()
    assert v.snapshot().healthy is False and v.snapshot().labels is first.labels
    v.info = {"NCPU": 2, "Labels": ["zone=b"], "KernelVersion": "6.2"}      # a resync replaces them
    v.changed()
    assert v.snapshot().labels["zone"] == "b" and v.snapshot().total_cpus == 2.0
    assert v.snapshot().kernel_version == "6.2"
    v.intent = NodeIntent(availability="drain", labels={"zone": "c"})         # `docker node update`
    v.changed()
    assert v.snapshot().labels["zone"] == "c" and v.snapshot().availability == "drain"
    v.images = [{"Id": "sha256:" + "1" * 64, "RepoTags": ["busybox:latest"]}]
    v.changed()
    assert [i.repo_tags for i in v.snapshot().images] == [("busybox:latest",)]
