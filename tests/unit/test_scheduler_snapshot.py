"""Snapshots and the per-node index the scheduler derives from them; builders the other
scheduler tests share."""
import copy
import dataclasses
import pickle

from swarmd.manager.scheduler.snapshot import (ContainerSnapshot, ImageSnapshot, NodeSnapshot, PortBinding,
                                        normalize_reference, repository_of)

GiB = 1 << 30


def ctr(name="c", *, id=None, image="busybox", image_id="sha256:" + "b" * 64, state="running", labels=None,
        ports=(), cpus=0.0, memory=0) -> ContainerSnapshot:
    return ContainerSnapshot(id=id or (name.encode().hex() + "0" * 64)[:64], name=name, image=image,
                             image_id=image_id, state=state, labels=dict(labels or {}), ports=tuple(ports),
                             cpus=cpus, memory=memory)


def img(id_hex: str, *tags: str) -> ImageSnapshot:
    return ImageSnapshot(id="sha256:" + id_hex, repo_tags=tuple(tags))


def node(name="node1", *, id=None, labels=None, healthy=True, cpus=4.0, memory=8 * GiB, containers=(),
         images=(), n_containers=0) -> NodeSnapshot:
    cs = tuple(containers) + tuple(ctr(f"{name}-filler{i}") for i in range(n_containers))
    return NodeSnapshot(id=id or f"ID-{name}", name=name, addr=f"{name}:4100", labels=dict(labels or {}),
                        healthy=healthy, total_cpus=cpus, total_memory=memory, containers=cs,
                        images=tuple(images), engine_version="24.0.7", os="linux", kernel_version="6.1.0",
                        operating_system="Debian GNU/Linux 12", architecture="x86_64")


def test_reservations_count_every_container_whatever_its_state():
    n = node(containers=[ctr("a", cpus=0.5, memory=GiB), ctr("b", state="exited", cpus=1.0, memory=GiB),
                         ctr("c", state="created", memory=512)])
    assert n.reserved_cpus == 1.5
    assert n.reserved_memory == 2 * GiB + 512
    assert n.index.count == 3


def test_copy_through_dict_carries_fields_only_and_gets_a_fresh_index():
    n = node(containers=[ctr("a", cpus=1.0)])
    assert n.reserved_cpus == 1.0                    # index built and cached
    assert set(n.__dict__) == {f.name for f in dataclasses.fields(NodeSnapshot)}
    m = NodeSnapshot(**{**n.__dict__, "containers": n.containers + (ctr("b", cpus=2.0),)})
    assert m.reserved_cpus == 3.0 and n.reserved_cpus == 1.0
    assert dataclasses.replace(n, containers=()).reserved_cpus == 0.0


def test_copies_and_pickles_of_an_indexed_snapshot_work():
    n = node(containers=[ctr("a", cpus=1.0)])
    n.index
    for other in (copy.copy(n), copy.deepcopy(n), pickle.loads(pickle.dumps(n))):
        assert other == n and other.reserved_cpus == 1.0


def test_snapshots_compare_by_value():
    assert node() == node()
    assert ctr("a") == ctr("a") and ctr("a") != ctr("b")


def test_port_conflicts_by_protocol_and_address():
    any_8080 = PortBinding("0.0.0.0", 8080, "tcp")
    assert any_8080.conflicts_with(PortBinding("127.0.0.1", 8080, "tcp"))
    assert PortBinding("127.0.0.1", 8080, "tcp").conflicts_with(PortBinding("", 8080, "tcp"))
    assert not any_8080.conflicts_with(PortBinding("0.0.0.0", 8080, "udp"))
    assert not any_8080.conflicts_with(PortBinding("0.0.0.0", 8081, "tcp"))
    assert not PortBinding("127.0.0.1", 80, "tcp").conflicts_with(PortBinding("127.0.0.2", 80, "tcp"))


def test_index_port_in_use_agrees_with_pairwise_conflicts():
    bound = [PortBinding("127.0.0.1", 80, "tcp"), PortBinding("0.0.0.0", 53, "udp"), PortBinding("::", 443, "tcp")]
    n = node(containers=[ctr("a", ports=bound[:2]), ctr("b", state="paused", ports=bound[2:]),
                         ctr("c", state="removing", ports=[PortBinding("0.0.0.0", 8080, "tcp")])])
    for wanted in [PortBinding(ip, port, proto) for ip in ("0.0.0.0", "127.0.0.1", "127.0.0.2")
                   for port in (80, 53, 443, 8080) for proto in ("tcp", "udp")]:
        assert n.index.port_in_use(wanted) == any(wanted.conflicts_with(b) for b in bound), wanted


def test_has_container_by_name_id_prefix_and_node_qualified_name():
    c = ctr("db", id="abcdef0123" + "0" * 54)
    n = node("node2", containers=[c])
    idx = n.index
    assert idx.has_container("db") and idx.has_container("/db")
    assert idx.has_container(c.id) and idx.has_container("abcdef")
    assert idx.has_container("node2/db") and not idx.has_container("node1/db")
    assert not idx.has_container("web") and not idx.has_container("") and not idx.has_container("abx")


def test_image_references_are_normalized():
    assert normalize_reference("docker.io/library/busybox:latest") == "busybox:latest"
    assert normalize_reference("localhost:5000/app:1") == "localhost:5000/app:1"
    assert repository_of("localhost:5000/app:1") == "localhost:5000/app"
    assert repository_of("localhost:5000/app") == "localhost:5000/app"
    assert repository_of("busybox@sha256:abc") == "busybox"
    n = node(images=[img("f" * 64, "docker.io/library/redis:7"), img("e" * 64, "<none>:<none>")])
    assert {"redis:7", "redis", "docker.io/library/redis"} <= n.index.image_refs
    assert "<none>" not in n.index.image_refs
    assert n.index.has_image_id("fff") and n.index.has_image_id("sha256:fff") and n.index.has_image_id("e" * 64)
    assert not n.index.has_image_id("redis")
