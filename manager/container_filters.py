"""`docker ps --filter …`: the engine's container filters, applied to the manager's records.

Pure functions over a record and its `ps` entry, plus `node=` (classic swarm's addition); only
`expose` and `isolation` read the record's whole inspect document, which records keep compressed
(manager.container_records). Unknown keys and malformed values are the client's mistake: 400.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone

from swarmd.manager.container_records import ContainerRecord
from swarmd.manager.httpd.errors import ApiError

KEYS = {"id", "name", "label", "status", "node", "exited", "ancestor", "health", "before", "since",
        "volume", "network", "publish", "expose", "isolation", "is-task"}
_EPOCH = datetime.min.replace(tzinfo=timezone.utc)
_STATUSES = {"created", "restarting", "running", "removing", "paused", "exited", "dead", "unknown"}


def validate(filters: dict[str, list[str]]) -> None:
    for key, values in filters.items():
        if key not in KEYS:
            raise ApiError(400, f"invalid filter '{key}'")
        if key == "status":
            for v in values:
                if v not in _STATUSES:
                    raise ApiError(400, f"invalid filter 'status={v}'")
        if key == "name":
            for v in values:
                try:
                    re.compile(v)
                except re.error:
                    raise ApiError(400, f"invalid filter 'name={v}': not a regular expression") from None
        if key in ("exited",):
            for v in values:
                if not v.lstrip("-").isdigit():
                    raise ApiError(400, f"invalid filter 'exited={v}'")


def _port_spec(value: str) -> tuple[int, int, str]:
    """`80`, `80/udp`, `8000-8080/tcp` -> (first, last, protocol or '')."""
    ports, _, proto = value.partition("/")
    first, _, last = ports.partition("-")
    try:
        lo = int(first)
        hi = int(last) if last else lo
    except ValueError:
        raise ApiError(400, f"invalid port filter {value!r}") from None
    return lo, hi, proto


def _in_ports(values: list[str], ports: list[tuple[int, str]]) -> bool:
    for v in values:
        lo, hi, proto = _port_spec(v)
        if any(lo <= p <= hi and (not proto or proto == pr) for p, pr in ports):
            return True
    return False


def _created(rec: ContainerRecord) -> datetime:
    return rec.created or _EPOCH


def _normalized_image(ref: str) -> str:
    """An image reference as the engine resolves it: `busybox`, `busybox:latest` and
    `docker.io/library/busybox:latest` are one image."""
    for prefix in ("docker.io/library/", "library/", "docker.io/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix):]
            break
    name = ref.rsplit("/", 1)[-1]
    return ref if ":" in name or "@" in name else f"{ref}:latest"


def is_ancestor(value: str, image: str, image_id: str) -> bool:
    """`ancestor=value`: the container's image by reference (any spelling of it), or by image ID
    or an ID prefix (with or without `sha256:`)."""
    if not value:
        return False
    hex_id, hex_value = image_id.removeprefix("sha256:"), value.removeprefix("sha256:")
    if hex_id and re.fullmatch(r"[0-9a-f]+", hex_value) and hex_id.startswith(hex_value):
        return True
    return bool(image) and _normalized_image(image) == _normalized_image(value)


def _on_network(rec: ContainerRecord, summary: Mapping, values: list[str]) -> bool:
    """`network=`: a network's name, `node/name` (as `docker network ls` lists it) or ID prefix."""
    nets = summary["NetworkSettings"]["Networks"]       # the document's NetworkSettings.Networks
    names = {name: (name, f"{rec.node_name}/{name}") for name in nets}
    return any(v in names[name] or (len(v) >= 4 and (n or {}).get("NetworkID", "").startswith(v))
               for v in values for name, n in nets.items())


def matches(rec: ContainerRecord, summary: Mapping, filters: dict[str, list[str]],
            find: Callable[[str], ContainerRecord]) -> bool:
    """Every key must match; several values of one key are alternatives (`label`: all must)."""
    for key, values in filters.items():
        if not values:
            continue
        if key == "id":
            ok = any(rec.id.startswith(v) for v in values)
        elif key == "name":
            names = (rec.name, f"{rec.node_name}/{rec.name}")
            ok = any(re.search(v.lstrip("/"), n) for v in values for n in names)
        elif key == "label":
            labels = rec.labels
            ok = all((labels.get(k) == v) if sep else (k in labels)
                     for k, sep, v in (item.partition("=") for item in values))
        elif key == "status":
            ok = summary["State"] in values
        elif key == "node":
            ok = any(re.fullmatch(re.escape(v).replace(r"\*", ".*"), rec.node_name) for v in values)
        elif key == "exited":
            ok = summary["State"] == "exited" and str(rec.state.get("ExitCode")) in values
        elif key == "ancestor":
            ok = any(is_ancestor(v, summary["Image"], summary["ImageID"]) for v in values)
        elif key == "health":
            ok = ((rec.state.get("Health") or {}).get("Status") or "none") in values
        elif key in ("before", "since"):
            # to the engine's precision: `Created` in the summary is whole seconds, and containers
            # made within one second must still be ordered
            created = _created(rec)
            refs = [_created(find(v)) for v in values]
            ok = all(created < t for t in refs) if key == "before" else all(created > t for t in refs)
        elif key == "volume":
            mounts = summary["Mounts"]                   # the document's Mounts
            ok = any(v in (m.get("Name"), m.get("Destination"), m.get("Source")) for v in values for m in mounts)
        elif key == "network":
            ok = _on_network(rec, summary, values)
        elif key == "publish":
            # the entry's Ports are the document's NetworkSettings.Ports, a binding's HostPort as PublicPort
            bound = [(p["PublicPort"], p["Type"]) for p in summary["Ports"] if p.get("PublicPort")]
            ok = _in_ports(values, bound)
        elif key == "expose":
            exposed = [(int(p), proto or "tcp") for p, _, proto in
                       (k.partition("/") for k in ((rec.doc.get("Config") or {}).get("ExposedPorts") or {}))
                       if p.isdigit()]
            ok = _in_ports(values, exposed)
        elif key == "is-task":
            ok = "false" in values or "0" in values
        elif key == "isolation":
            ok = any(v in ("default", (rec.doc.get("HostConfig") or {}).get("Isolation") or "default") for v in values)
        else:
            raise ApiError(400, f"invalid filter '{key}'")
        if not ok:
            return False
    return True
