"""The remembered-placement path chooses what a straightforward evaluation chooses.

Seeded random clusters of a few hundred nodes (several of the placements' comparison blocks) go
through random changes, the kinds the manager and the bench make: a container placed or removed,
a node re-read into an equal snapshot, a node failing, drained or relabelled, nodes joining,
leaving or changing places, many nodes changing at once, the list mutated in place or built anew.
After every change one scheduler, reused all along, decides for a random spec, and its choice is
compared with two references: every node judged from its fields by the rules written out plainly
below (no index, no memory), and the filters in order over fresh copies of the snapshots.
"""
import copy
import dataclasses
import random

import pytest

from swarmd.manager.scheduler import ContainerSpec, NoSuitableNode, Scheduler
from swarmd.manager.scheduler.filters.constraint import label_value
from swarmd.manager.scheduler.placements import BLOCK, Placements
from swarmd.manager.scheduler.snapshot import PortBinding, normalize_reference, repository_of
from tests.unit.test_scheduler_snapshot import GiB, ctr, img, node

IMAGES = [img("a" * 64, "busybox:latest"), img("b" * 64, "docker.io/library/redis:7"),
          img("c" * 64, "localhost:5000/app:1.0"), img("d" * 64, "<none>:<none>")]
PORTS = [PortBinding(ip, port, proto) for ip in ("0.0.0.0", "127.0.0.1", "", "::")
         for port in (80, 8080) for proto in ("tcp", "udp")]


COMPOSE = {"com.docker.compose.project": "p", "com.docker.compose.service": "web"}


def spec(env=(), hc=None, labels=None):
    return ContainerSpec.from_create({"Image": "busybox", "Env": list(env), "HostConfig": hc or {},
                                      "Labels": labels or {}}, None)


def compose(number: int) -> dict:
    return {**COMPOSE, "com.docker.compose.container-number": str(number)}


def ports(*bindings):
    out: dict = {}
    for ip, port, proto in bindings:
        out.setdefault(f"{port}/{proto}", []).append({"HostIp": ip, "HostPort": str(port)})
    return {"PortBindings": out}


# hard rules only: the specs the remembered placements answer
SPECS = [
    spec(),
    spec(["constraint:zone==z1"]),
    spec(["constraint:zone!=z1", "affinity:app==web"]),
    spec(["constraint:node==n1*"]),
    spec(["constraint:storage==/ss./"], {"Memory": 2 * GiB}),
    spec(["affinity:image==busybox"], {**ports(("", 80, "tcp")), "NanoCpus": 500_000_000}),
    spec(["affinity:image==redis:7", "affinity:container!=db"]),
    spec(["affinity:container==db*"]),
    spec(hc=ports(("127.0.0.1", 8080, "tcp"), ("0.0.0.0", 80, "udp"))),
    spec(hc={"Memory": 3 * GiB, "NanoCpus": 1_500_000_000}),
    spec(["constraint:zone==z2"], {**ports(("0.0.0.0", 80, "tcp")), "Memory": GiB, "NanoCpus": 250_000_000}),
    # compose's recreate: the stopped container of the same service and number gives up its ports
    spec(hc=ports(("", 80, "tcp")), labels=compose(1)),
    spec(hc=ports(("", 80, "tcp")), labels=compose(2)),
    spec(["affinity:container==db"], ports(("", 8080, "tcp"))),
]


def random_container(rng: random.Random, k: int):
    name = rng.choice(["db", "web", f"x{k}", f"db{k}"])
    return ctr(name, id=f"{k:x}".rjust(64, "0"), state=rng.choice(["running", "running", "exited", "created", "removing"]),
               labels=rng.choice([{}, {"app": "web"}, {"app": "db"}, compose(1), compose(2)]),
               ports=rng.sample(PORTS, rng.choice([0, 0, 0, 1, 2])),
               cpus=rng.choice([0.0, 0.0, 0.5, 1.0]), memory=rng.choice([0, 0, GiB // 2, GiB]))


def random_node(rng: random.Random, i: int, k: int):
    labels = {"zone": f"z{rng.randrange(3)}", "storage": rng.choice(["ssd", "disk"])}
    if rng.random() < 0.1:
        labels["containerslots"] = rng.choice(["2", "4", "x"])
    n = node(f"n{i}", labels=labels, healthy=rng.random() > 0.05, cpus=rng.choice([2.0, 4.0]),
             memory=rng.choice([4 * GiB, 8 * GiB]), images=rng.sample(IMAGES, rng.randrange(len(IMAGES) + 1)),
             containers=[random_container(rng, k * 100 + j) for j in range(rng.randrange(5))])
    return n if rng.random() > 0.05 else dataclasses.replace(n, availability=rng.choice(["pause", "drain"]))


# -- the plain reference ----------------------------------------------------------------------

def _replaced(s: ContainerSpec, c) -> bool:
    """`c` is the stopped container `s` replaces: same compose service and number, or named by a
    hard `affinity:container==`."""
    if c.state not in ("created", "exited", "dead"):
        return False
    if s.compose_identity and all(c.labels.get(k) == v for k, v in s.compose_identity):
        return True
    return any(e.key == "container" and e.operator == "==" and not e.soft and e.is_plain
               and (e.value == c.name or c.id.startswith(e.value)) for e in s.affinities)


def _port_free(s: ContainerSpec, n, wanted: PortBinding) -> bool:
    return not any(wanted.conflicts_with(p) for c in n.containers
                   if c.state != "removing" and not _replaced(s, c) for p in c.ports)


def _affinity_hit(n, e) -> bool:
    if e.key == "container":
        return any(e.matches_one(c.name) or e.matches_one(c.id) for c in n.containers)
    if e.key == "image":
        refs = set()
        for i in n.images:
            for tag in i.repo_tags:
                if tag != "<none>:<none>":
                    for t in (tag, normalize_reference(tag)):
                        refs |= {t, repository_of(t)}
        return (any(e.matches_one(r) for r in refs) or normalize_reference(e.value) in refs
                or any(i.id.startswith(e.value) or i.id.split(":", 1)[1].startswith(e.value) for i in n.images))
    return any(e.matches_one(c.labels[e.key]) for c in n.containers if e.key in c.labels)


def _constraint_hit(n, e) -> bool:
    if e.key == "node":
        return e.matches_one(n.name) or e.matches_one(n.id)
    return e.matches_one(label_value(n, e.key))


def plain_key(s: ContainerSpec, n, strategy: str, overcommit: float):
    """The node's strategy key when every rule accepts it, else None: from the fields alone."""
    if not n.healthy or n.availability != "active":
        return None
    count = len(n.containers)
    slots = n.labels.get("containerslots")
    if slots is not None and slots.isdigit() and count >= int(slots):
        return None
    if not all(_port_free(s, n, w) for w in s.ports):
        return None
    for e in s.affinities:
        if _affinity_hit(n, e) != (e.operator == "=="):
            return None
    for e in s.constraints:
        if _constraint_hit(n, e) != (e.operator == "=="):
            return None
    cpus = 0.0
    memory = 0
    for c in n.containers:
        cpus += c.cpus
        memory += c.memory
    scale = 1.0 + overcommit
    if s.memory > 0 and memory + s.memory > n.total_memory * scale:
        return None
    if s.cpus > 0 and cpus + s.cpus > n.total_cpus * scale + 1e-9:
        return None
    load = cpus / n.total_cpus + memory / n.total_memory
    if s.memory > 0 or s.cpus > 0:
        weight = ((cpus + s.cpus) * 100 / (n.total_cpus * scale) if s.cpus > 0 else 100.0) + \
                 ((memory + s.memory) * 100 / (n.total_memory * scale) if s.memory > 0 else 100.0)
        key = (weight, count, load)
    else:
        key = (count, load)
    if strategy == "binpack":
        key = tuple(-k for k in key)
    return key + (n.name, n.id)


def plain_choice(s: ContainerSpec, nodes, strategy: str, overcommit: float):
    best = None
    for pos, n in enumerate(nodes):
        key = plain_key(s, n, strategy, overcommit)
        if key is not None and (best is None or key < best[0]):
            best = (key, pos)
    return None if best is None else best[1]


def filters_in_order(scheduler: Scheduler, s: ContainerSpec, nodes):
    """The position the filters in order and the strategy's pick choose, on fresh copies (no index
    read before), or the NoSuitableNode they raise."""
    copies = [copy.copy(n) for n in nodes]
    fresh = Scheduler(scheduler.strategy_name, scheduler.filter_names, overcommit=scheduler.overcommit)
    chosen = fresh._strategy.pick(s, fresh.candidates(s, copies))
    return next(i for i, c in enumerate(copies) if c is chosen)


# -- the changes --------------------------------------------------------------------------------

def change(rng: random.Random, nodes: list, k: int) -> list:
    """One random change of the cluster; returns the list to decide on next (the same list
    mutated in place, as the bench does, or a new one, as the manager's snapshots are)."""
    what = rng.choice(["add", "add", "remove", "equal", "health", "drain", "labels", "join", "leave", "swap",
                       "many", "none"])
    i = rng.randrange(len(nodes))
    n = nodes[i]
    if what == "add":
        nodes[i] = dataclasses.replace(n, containers=n.containers + (random_container(rng, k),))
    elif what == "remove" and n.containers:
        drop = rng.randrange(len(n.containers))
        nodes[i] = dataclasses.replace(n, containers=n.containers[:drop] + n.containers[drop + 1:])
    elif what == "equal":           # re-read: another object with the same fields
        nodes[i] = copy.copy(n) if rng.random() < 0.5 else dataclasses.replace(n)
    elif what == "health":
        nodes[i] = dataclasses.replace(n, healthy=not n.healthy)
    elif what == "drain":
        nodes[i] = dataclasses.replace(n, availability=rng.choice(["active", "pause", "drain"]))
    elif what == "labels":
        nodes[i] = dataclasses.replace(n, labels={**n.labels, "zone": f"z{rng.randrange(3)}"})
    elif what == "join":
        nodes.insert(rng.randrange(len(nodes) + 1), random_node(rng, 1000 + k, k))
    elif what == "leave" and len(nodes) > 1:
        del nodes[i]
    elif what == "swap":
        j = rng.randrange(len(nodes))
        nodes[i], nodes[j] = nodes[j], nodes[i]
    elif what == "many":            # a quarter of the nodes and more: a resync
        for j in rng.sample(range(len(nodes)), len(nodes) // 3):
            nodes[j] = dataclasses.replace(nodes[j], containers=nodes[j].containers + (random_container(rng, k * 7 + j),))
    return nodes if rng.random() < 0.5 else list(nodes)


@pytest.mark.parametrize("seed", range(4))
def test_remembered_choices_match_the_plain_evaluation(seed):
    rng = random.Random(seed)
    strategy = ("spread", "binpack")[seed % 2]
    overcommit = (0.0, 0.0, 0.1)[seed % 3]
    nodes = [random_node(rng, i, i) for i in range(rng.randrange(2 * BLOCK + 1, 5 * BLOCK))]
    scheduler = Scheduler(strategy, overcommit=overcommit)
    checked = 0
    for k in range(120):
        s = rng.choice(SPECS)
        expected = plain_choice(s, nodes, strategy, overcommit)
        if expected is None:
            with pytest.raises(NoSuitableNode) as missing:
                filters_in_order(scheduler, s, nodes)
            with pytest.raises(NoSuitableNode) as err:
                scheduler.select(s, nodes)
            assert str(err.value) == str(missing.value)
        else:
            assert filters_in_order(scheduler, s, nodes) == expected
            assert scheduler.select(s, nodes) is nodes[expected], (k, s)
            checked += 1
        # the chosen node takes the container, as the manager's pending placeholder shows it
        if expected is not None and rng.random() < 0.7:
            n = nodes[expected]
            placed = ctr(f"p{k}", id=f"{k:x}".rjust(64, "f"), state="created", ports=s.ports, cpus=s.cpus,
                         memory=s.memory)
            nodes[expected] = dataclasses.replace(n, containers=n.containers + (placed,))
        nodes = change(rng, nodes, k)
    assert checked > 60       # most decisions found a node: the comparison is not of errors only


def test_only_new_snapshot_objects_are_judged_across_blocks():
    rng = random.Random(3)
    nodes = [random_node(rng, i, i) for i in range(3 * BLOCK + 5)]
    judged = []

    def judge(n):
        judged.append(n)
        return len(n.containers), n.name

    p = Placements().get("sig", lambda: judge)
    p.best(nodes)
    assert len(judged) == len(nodes)
    judged.clear()
    # an equal copy in one block, a container more on two nodes of two others: only those two are judged
    nodes[1] = copy.copy(nodes[1])
    for i in (BLOCK + 3, 3 * BLOCK + 1):
        nodes[i] = dataclasses.replace(nodes[i], containers=nodes[i].containers + (ctr(f"new{i}"),))
    assert nodes[p.best(list(nodes))] is min(nodes, key=lambda n: (len(n.containers), n.name))
    assert judged == [nodes[BLOCK + 3], nodes[3 * BLOCK + 1]]
    # nodes joining shift every position: only the new node is judged, the others keep their verdicts
    judged.clear()
    newcomer = node("aaa")
    nodes.insert(2, newcomer)
    assert nodes[p.best(nodes)] is newcomer
    assert judged == [newcomer]


def test_the_compose_identity_is_part_of_what_a_verdict_remembers():
    """Two specs alike but for compose's labels judge a node differently: the stopped container of
    the same service and number gives its port to its replacement only."""
    ident = {"com.docker.compose.project": "p", "com.docker.compose.service": "web",
             "com.docker.compose.container-number": "1"}
    port = PortBinding("0.0.0.0", 80, "tcp")
    nodes = [node("a", containers=[ctr("old", state="exited", labels=ident, ports=[port])]),
             node("b", containers=[ctr("x"), ctr("y")])]
    hc = {"PortBindings": {"80/tcp": [{"HostPort": "80"}]}}
    plain = ContainerSpec.from_create({"Image": "busybox", "HostConfig": hc}, None)
    replacement = ContainerSpec.from_create({"Image": "busybox", "Labels": ident, "HostConfig": hc}, None)
    scheduler = Scheduler()
    assert scheduler.select(plain, nodes).name == "b"           # "a" holds port 80 for "old"
    assert scheduler.select(replacement, nodes).name == "a"     # fewer containers, and the port is its own
    assert scheduler.select(plain, nodes).name == "b"
