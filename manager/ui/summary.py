"""What the web view shows, as pure functions: a cluster snapshot (plain facts) to the page's JSON.

The page must stay responsive with 1,000 nodes and 30,000 containers, so the summary is bounded:
at most MAX_COLUMNS node columns and CARDS_PER_COLUMN container cards in each, with the counts of
what was left out ("+K more"); the filters (node, label, name) narrow what is drawn.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MAX_COLUMNS = 60
CARDS_PER_COLUMN = 12


@dataclass(frozen=True)
class ContainerFacts:
    id: str
    name: str
    image: str
    state: str                       # "running", "exited", "created", "paused", …
    ports: tuple[str, ...] = ()      # published ports as `docker ps` shows them
    created: int = 0                 # unix seconds


@dataclass(frozen=True)
class NodeFacts:
    id: str
    name: str
    addr: str
    status: str                      # Healthy, Unhealthy, Pending
    availability: str                # active, pause, drain
    labels: dict[str, str]
    cpus: float
    reserved_cpus: float
    memory: int
    reserved_memory: int
    containers: tuple[ContainerFacts, ...] = ()


@dataclass(frozen=True)
class ClusterFacts:
    strategy: str
    filters: tuple[str, ...]
    nodes: tuple[NodeFacts, ...] = ()


@dataclass(frozen=True)
class Query:
    """The page's filters: node name and container name by substring, label as KEY or KEY=VALUE."""
    node: str = ""
    label: str = ""
    name: str = ""

    def node_matches(self, node: NodeFacts) -> bool:
        if self.node and self.node.lower() not in node.name.lower():
            return False
        if self.label:
            key, sep, value = self.label.partition("=")
            if key not in node.labels or (sep and node.labels[key] != value):
                return False
        return True

    def container_matches(self, c: ContainerFacts) -> bool:
        return not self.name or self.name.lower() in c.name.lower()


def port_text(port: dict) -> str:
    """One `docker ps` Ports entry: `0.0.0.0:8080->80/tcp`, or `80/tcp` when not published."""
    private = f"{port.get('PrivatePort')}/{port.get('Type') or 'tcp'}"
    if port.get("PublicPort"):
        return f"{port.get('IP') or '0.0.0.0'}:{port['PublicPort']}->{private}"
    return private


def _card(c: ContainerFacts) -> dict:
    return {"id": c.id, "name": c.name, "image": c.image, "state": c.state, "ports": list(c.ports),
            "created": c.created}


def _column(node: NodeFacts, query: Query, cards: int) -> dict:
    matching = [c for c in node.containers if query.container_matches(c)]
    matching.sort(key=lambda c: (-c.created, c.name))      # newest first: what just happened is on top
    return {"id": node.id, "name": node.name, "addr": node.addr, "status": node.status,
            "availability": node.availability, "labels": dict(sorted(node.labels.items())),
            "cpus": {"reserved": node.reserved_cpus, "total": node.cpus},
            "memory": {"reserved": node.reserved_memory, "total": node.memory},
            "containers": len(node.containers), "matching": len(matching),
            "cards": [_card(c) for c in matching[:cards]], "more": max(0, len(matching) - cards)}


def summarize(facts: ClusterFacts, query: Query = Query(), max_columns: int = MAX_COLUMNS,
              cards_per_column: int = CARDS_PER_COLUMN) -> dict:
    """The page's JSON: totals over the whole cluster, and the bounded columns the filters leave."""
    shown = sorted((n for n in facts.nodes if query.node_matches(n)), key=lambda n: n.name)
    columns = [_column(n, query, cards_per_column) for n in shown[:max_columns]]
    return {
        "strategy": facts.strategy, "filters": list(facts.filters),
        "totals": {"nodes": len(facts.nodes),
                   "healthy": sum(1 for n in facts.nodes if n.status == "Healthy"),
                   "containers": sum(len(n.containers) for n in facts.nodes),
                   "running": sum(1 for n in facts.nodes for c in n.containers if c.state == "running"),
                   "matching_nodes": len(shown)},
        "nodes": columns, "more_nodes": max(0, len(shown) - max_columns),
    }


def event_line(event: dict) -> dict:
    """One line of the page's event tail: when, which node, what happened to what."""
    actor = event.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    node = (event.get("node") or {}).get("Name") or attrs.get("node.name") or ""
    what = attrs.get("name") or (actor.get("ID") or event.get("id") or "")[:12]
    return {"time": event.get("time") or 0, "node": node, "type": event.get("Type") or event.get("type") or "",
            "action": event.get("Action") or event.get("status") or "", "name": what}


def inspect_summary(doc: dict, node: str) -> dict:
    """What the page shows of a container's inspect document (no environment: it may hold secrets)."""
    cfg = doc.get("Config") or {}
    state = doc.get("State") or {}
    hc = doc.get("HostConfig") or {}
    return {"id": doc.get("Id") or "", "name": (doc.get("Name") or "").lstrip("/"), "node": node,
            "image": cfg.get("Image") or "", "command": " ".join([*(cfg.get("Entrypoint") or []),
                                                                 *(cfg.get("Cmd") or [])]),
            "created": doc.get("Created") or "", "state": state.get("Status") or "",
            "started": state.get("StartedAt") or "", "finished": state.get("FinishedAt") or "",
            "exit_code": state.get("ExitCode", 0), "restart_policy": (hc.get("RestartPolicy") or {}).get("Name") or "",
            "labels": cfg.get("Labels") or {},
            "networks": sorted(((doc.get("NetworkSettings") or {}).get("Networks") or {}).keys())}


def log_lines(body: bytes, tty: bool, limit: int) -> list[str]:
    """The last `limit` lines of a logs body: raw with a TTY, else the engine's 8-byte-header frames."""
    if tty:
        text = body.decode(errors="replace")
    else:
        out, pos = [], 0
        while pos + 8 <= len(body):
            size = int.from_bytes(body[pos + 4:pos + 8], "big")
            out.append(body[pos + 8:pos + 8 + size])
            pos += 8 + size
        text = b"".join(out).decode(errors="replace")
    return text.splitlines()[-limit:] if limit > 0 else []
