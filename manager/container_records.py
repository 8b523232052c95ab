"""What the manager remembers of one container, derived from the engine's inspect document.

A manager holds one record per container of the cluster (150,000 at the scale targets), so a
record is compact (bench/memory.py measures it; docs/benchmarks.md, "Memory at scale"):
- the inspect document is kept as its JSON, zlib-compressed against a preset dictionary of the
  document's shape (about 0.35 KiB for a 4 KiB document that decodes into 20 KiB of dicts), and
  decoded again only when a caller reads `doc` (a few recently stored or read ones stay decoded);
- what every listing, filter and scheduling decision reads is decoded once, into slots: name,
  labels, the state fields the manager reads (one shared read-only mapping per distinct state),
  parsed times, the scheduler's snapshot and the static part of the `docker ps` entry as JSON;
- repeated strings (node, image, label keys and values) are shared, not copied per record.
"""
from __future__ import annotations

import json
import operator
import sys
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from types import MappingProxyType

import orjson

from swarmd.common import json_parse
from swarmd.common.packed_documents import pack_document, unpack_document
from swarmd.manager.container_status import duration_bucket, parse_time, plainly_running, status_at, up_for
from swarmd.manager.scheduler.container_spec import RESCHEDULE_LABEL, reschedule_policies, reserved_cpus
from swarmd.manager.scheduler.snapshot import ContainerSnapshot, PortBinding

# classic swarm's own ID for a container (cluster/config.go `SwarmID`): set by the manager at
# create, kept when the container is rescheduled to another node, where its engine ID changes
SWARM_ID_LABEL = "com.docker.swarm.id"
ID_LENGTH, SHORT_ID_LENGTH = 64, 12     # an engine's container IDs, whole and as `docker ps` shows them
SWARM_ID_LENGTH, SWARM_SHORT_ID_LENGTH = ID_LENGTH, SHORT_ID_LENGTH   # classic's swarm IDs take both forms
ON_NODE_FAILURE = "on-node-failure"     # the reschedule policy manager.intent keeps records for
DECODED_DOCUMENTS = 256                 # inspect documents kept decoded (recently stored or read)
STATE_KEYS = ("Status", "Running", "Paused", "Restarting", "Dead", "ExitCode")   # and Health's Status
_SHARED_STATES_MAX = 4096


def _command(doc: dict) -> str:
    path = doc.get("Path") or ""
    args = [f"'{a}'" if " " in a else a for a in (doc.get("Args") or [])]
    return f"{path} {' '.join(args)}" if args else path


def _published_ports(doc: dict, host_ip: str) -> list[dict]:
    out = []
    ports = ((doc.get("NetworkSettings") or {}).get("Ports")) or {}
    for key, bindings in sorted(ports.items()):
        port, _, proto = key.partition("/")
        if not bindings:
            out.append({"PrivatePort": int(port), "Type": proto or "tcp"})
            continue
        for b in bindings:
            ip = b.get("HostIp") or "0.0.0.0"
            if ip in ("0.0.0.0", "::") and host_ip:
                ip = host_ip   # as classic swarm: say where the port really is
            out.append({"IP": ip, "PrivatePort": int(port), "PublicPort": int(b.get("HostPort") or 0),
                        "Type": proto or "tcp"})
    return out


def requested_bindings(doc: dict) -> tuple[PortBinding, ...]:
    """Host ports the container holds: its bindings, or every exposed port on the host network."""
    out = []
    hc = doc.get("HostConfig") or {}
    if hc.get("NetworkMode") == "host":
        for key in (doc.get("Config") or {}).get("ExposedPorts") or doc.get("ExposedPorts") or {}:
            port, _, proto = key.partition("/")
            if port.isdigit():
                out.append(PortBinding("0.0.0.0", int(port), proto or "tcp"))
        return tuple(out)
    for key, bindings in (hc.get("PortBindings") or {}).items():
        _, _, proto = key.partition("/")
        for b in bindings or []:
            hp = str(b.get("HostPort") or "")
            if hp.isdigit() and int(hp) > 0:
                out.append(PortBinding(b.get("HostIp") or "0.0.0.0", int(hp), proto or "tcp"))
    return tuple(out)


def _shared(value):
    """One object for equal strings across records (label keys and values, images, nodes)."""
    return sys.intern(value) if type(value) is str else value


def engine_time(text) -> datetime | None:
    """`parse_time` of an engine's RFC 3339 UTC time (`2026-11-25T12:00:00.123456789Z`), read
    directly by `datetime.fromisoformat` when it has exactly that shape (a record's times are
    unique to it: the parse_time cache would only miss); any other text goes to parse_time."""
    if type(text) is str and len(text) >= 20 and text[-1] == "Z" and text[10] == "T" and text[19] in ".Z" \
            and (len(text) == 20 or text[20:-1].isdigit()) and not text.startswith("0001-01-01"):
        try:
            return datetime.fromisoformat(text)     # 'Z': tzinfo is timezone.utc, as parse_time's
        except ValueError:
            pass
    return parse_time(text)


def _reschedules(cfg: dict) -> bool:
    """`reschedule_policies` names on-node-failure; asked only when the config carries the policy
    label or a `reschedule:` environment entry (the only places it is read from)."""
    labels, env = cfg.get("Labels"), cfg.get("Env")
    if not (isinstance(labels, dict) and RESCHEDULE_LABEL in labels) and not (
            isinstance(env, list) and any(type(e) is str and e.startswith("reschedule:") for e in env)):
        return False
    return ON_NODE_FAILURE in reschedule_policies(cfg)


_MISSING = object()
_STATES: dict[tuple, Mapping] = {}


def shared_state(state: dict) -> Mapping:
    """The fields of an inspect document's `State` the manager reads (STATE_KEYS, and Health's
    Status), read-only: one mapping per distinct state, shared by every record in it (a state's
    times, unique per container, are kept parsed on the record)."""
    health = state.get("Health")
    health_status = health.get("Status") if isinstance(health, dict) else None
    key = tuple(state.get(k, _MISSING) for k in STATE_KEYS) + (health_status,)
    try:
        hit = _STATES.get(key)
    except TypeError:               # an unhashable value: this state is kept apart
        key, hit = None, None
    if hit is None:
        fields = {k: _shared(state[k]) for k in STATE_KEYS if k in state}
        if health_status is not None:
            fields["Health"] = MappingProxyType({"Status": health_status})
        hit = MappingProxyType(fields)
        if key is not None and len(_STATES) < _SHARED_STATES_MAX:
            _STATES[key] = hit
    return hit


# record -> its decoded document: the last DECODED_DOCUMENTS stored or read
_DECODED: OrderedDict[ContainerRecord, dict] = OrderedDict()


def _remember(rec: ContainerRecord, doc: dict) -> None:
    _DECODED[rec] = doc
    _DECODED.move_to_end(rec)
    if len(_DECODED) > DECODED_DOCUMENTS:
        _DECODED.popitem(last=False)


# -- records -------------------------------------------------------------------------------------


def _static_summary(doc: dict, cid: str, names: str, image: str, image_id: str, created: datetime | None,
                    host_ip: str, labels: dict) -> dict:
    """The parts of the `docker ps` entry that only change with the document (all but Status/State)."""
    hc = doc.get("HostConfig") or {}
    ns = doc.get("NetworkSettings") or {}
    return {
        "Id": cid,
        "Names": [names],
        "Image": image,
        "ImageID": image_id,
        "Command": _command(doc),
        "Created": int(created.timestamp()) if created else 0,
        "Ports": _published_ports(doc, host_ip),
        "Labels": labels,
        "HostConfig": {"NetworkMode": hc.get("NetworkMode") or "default"},
        "NetworkSettings": {"Networks": ns.get("Networks") or {}},
        "Mounts": doc.get("Mounts") or [],
    }


# what json.dumps(..., separators=) made anew per call; no cycle check: a `ps` entry is built from
# a JSON document, which cannot hold one (the check's bookkeeping was a fifth of the encoding)
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def _static_json(static: dict) -> bytes:
    """A `ps` entry's static part as compact JSON, by orjson (a tenth of the standard library's
    time; text beyond ASCII is written as UTF-8, as the engine writes it), or by the standard
    library for what orjson cannot write (an integer beyond 64 bits)."""
    try:
        return orjson.dumps(static)
    except orjson.JSONEncodeError:
        return _COMPACT_JSON.encode(static).encode()


def _field(index: int, doc: str = "") -> property:
    return property(lambda rec: rec._f[index], doc=doc)


class ContainerRecord:
    """One container as the manager keeps it: built from the engine's inspect document (`doc`; `raw`
    the JSON it was decoded from, when at hand; `packed`, that JSON already packed, when the
    agent sent it so: see swarmd.common.packed_documents) and never changed in place: a refresh stores a new
    record, so everything derived from the document is computed here, once.

    The scalar fields live in one tuple of strings, numbers, times and bytes, which the garbage
    collector stops tracking after its first pass: a collection that walks the records visits four
    references each (that tuple, the shared state, the labels, the snapshot), not twenty."""

    __slots__ = ("_f", "state", "labels", "_snapshot", "listing_key")

    def __init__(self, node_id: str, node_name: str, doc: dict, host_ip: str = "", raw: bytes = b"",
                 read_at: int = 0, remember: bool = True, packed: bytes = b""):
        cfg = doc.get("Config") or {}
        hc = doc.get("HostConfig") or {}
        state = doc.get("State") or {}
        cid, name = doc["Id"], (doc.get("Name") or "").lstrip("/")
        node_name, host_ip = _shared(node_name), _shared(host_ip)
        image, image_id = _shared(cfg.get("Image") or ""), _shared(doc.get("Image") or "")
        created = engine_time(doc.get("Created"))
        self.state = shared_state(state)
        # a dict of strings only: the collector does not track it
        self.labels = {_shared(k): _shared(v) for k, v in (cfg.get("Labels") or {}).items()}
        self._snapshot = ContainerSnapshot(
            id=cid, name=name, image=image, image_id=image_id, state=self.state.get("Status") or "",
            labels=self.labels, ports=requested_bindings(doc), cpus=reserved_cpus(cfg, hc),
            memory=int(hc.get("Memory") or 0))
        static = _static_summary(doc, cid, f"/{node_name}/{name}", image, image_id, created, host_ip, self.labels)
        raw = raw.rstrip() if raw else b""
        if not raw.endswith(b"}"):
            raw, packed = json.dumps(doc, separators=(",", ":")).encode(), b""
        self._f = (cid, name, _shared(node_id), node_name, host_ip, str(self.labels.get(SWARM_ID_LABEL) or ""),
                   created, engine_time(state.get("StartedAt")), engine_time(state.get("FinishedAt")), image,
                   image_id, bool(cfg.get("Tty")), _reschedules(cfg), read_at,
                   _static_json(static)[:-1], packed or pack_document(raw))
        # what a listing sorts by (newest first), read in C by operator.attrgetter
        self.listing_key = created or EPOCH
        if remember:        # a node's sync stores many at once: none of them was just asked about
            _remember(self, doc)

    id = _field(0)
    name = _field(1)
    node_id = _field(2)
    node_name = _field(3)
    host_ip = _field(4)
    swarm_id = _field(5, "classic's swarm ID label, or ''")
    created = _field(6)
    started = _field(7)
    finished = _field(8)
    image = _field(9, "the image as the container was created with it (Config.Image)")
    image_id = _field(10)
    tty = _field(11)
    reschedules = _field(12, "it carries reschedule:on-node-failure (label or env)")
    read_at = _field(13, "engine clock (ns) when the document was read; 0: not said")
    _static_json = _field(14)
    _packed = _field(15)

    def __repr__(self) -> str:
        return f"ContainerRecord(id={self.id[:12]!r}, name={self.name!r}, node={self.node_name!r})"

    @property
    def doc(self) -> dict:
        """The engine's inspect document (decoded again unless recently stored or read). Read only:
        it is not the record, and a change to it changes nothing the manager lists."""
        doc = _DECODED.get(self)
        if doc is None:
            doc = json_parse.loads(self.document_json() + b"}")
        _remember(self, doc)
        return doc

    def document_json(self) -> bytes:
        """The inspect document's JSON without its closing brace (a handler adds fields)."""
        return unpack_document(self._packed).rstrip()[:-1]

    def snapshot(self) -> ContainerSnapshot:
        return self._snapshot

    @property
    def created_seconds(self) -> int:
        created = self._f[6]
        return int(created.timestamp()) if created else 0

    def status(self, now: datetime | None = None) -> str:
        """The `Status` column at `now` ("Up 5 minutes", "Exited (0) 2 hours ago", …)."""
        f = self._f
        return status_at(self.state, f[7], f[8], now)

    def summary(self, now: datetime | None = None) -> ContainerSummary:
        """The `GET /containers/json` entry, names as `/node/name`, Status computed at `now`."""
        f, state = self._f, self.state
        return ContainerSummary(self, state.get("Status") or "", status_at(state, f[7], f[8], now))

    def summary_json_at(self, now: datetime | None = None) -> bytes:
        """`summary_json(summary(now))` without the summary object: what most entries of a long
        list are (no filter to read it, nothing to override)."""
        f, state = self._f, self.state
        return f[14] + _summary_tail(state.get("Status") or "", status_at(state, f[7], f[8], now))

    def summary_json(self, summary: Mapping) -> bytes:
        """`summary` (from `summary()`, State and Status possibly overridden) as JSON bytes; the
        static part was encoded once, with the record."""
        if type(summary) is ContainerSummary:
            return self._f[14] + _summary_tail(summary.state, summary.status)
        return self._f[14] + _summary_tail(summary["State"], summary["Status"])


# ContainerRecord.snapshot() of many records at once, read in C (a node's snapshot holds every one)
snapshot_of = operator.attrgetter("_snapshot")

EPOCH = datetime.min.replace(tzinfo=timezone.utc)     # the listing key of a record without a `Created`


# (State, Status) -> the end of a `docker ps` entry: a list of 150,000 entries holds a few hundred
# distinct ones ("Up 5 minutes"), encoded once each rather than twice per entry
# (and, for a list, the comma that separates it from the next entry)
_TAILS: dict[tuple[str, str, bytes], bytes] = {}
_TAILS_MAX = 4096


def _summary_tail(state: str, status: str, then: bytes = b"") -> bytes:
    tail = _TAILS.get((state, status, then))
    if tail is None:
        if len(_TAILS) >= _TAILS_MAX:
            _TAILS.clear()
        tail = _TAILS[(state, status, then)] = b"".join((b',"State":', json.dumps(state).encode(), b',"Status":',
                                                         json.dumps(status).encode(), b"}", then))
    return tail


def _listed_tail(state: str, status: str) -> bytes:
    return _summary_tail(state, status, b",")


def listing_json(records: list[ContainerRecord], now: datetime,
                 summaries: Mapping[ContainerRecord, Mapping] | None = None) -> bytes:
    """The `GET /containers/json` body listing `records` in their order, each as `summary_json_at(now)`
    or, for a record in `summaries`, as `summary_json` of its summary there. Each entry is two
    pieces of bytes already made (the record's static part, a shared end), joined once: no entry is
    copied on its own first (a list of 150,000 is about 110 MB)."""
    parts = [b"["]
    append = parts.append
    plain: dict[int, bool] = {}       # id of a shared state -> plainly_running(state)
    up_tails: dict[tuple[int, int], bytes] = {}   # (id of a plainly running state, duration_bucket) -> end
    for rec in records:
        f = rec._f
        summary = summaries.get(rec) if summaries else None
        append(f[14])
        if summary is None:
            state, started = rec.state, f[7]
            up = plain.get(id(state))
            if up is None:
                up = plain[id(state)] = plainly_running(state)
            if up and started is not None:
                key = (id(state), duration_bucket((now - started).total_seconds()))
                tail = up_tails.get(key)
                if tail is None:
                    tail = up_tails[key] = _listed_tail(state.get("Status") or "", up_for(started, now))
                append(tail)
            else:
                append(_listed_tail(state.get("Status") or "", status_at(state, started, f[8], now)))
        elif type(summary) is ContainerSummary:
            append(_listed_tail(summary.state, summary.status))
        else:
            append(_listed_tail(summary["State"], summary["Status"]))
    if records:
        parts[-1] = parts[-1][:-1]               # no separator after the last entry
    append(b"]\n")
    return b"".join(parts)


_SUMMARY_KEYS = ("Id", "Names", "Image", "ImageID", "Command", "Created", "Ports", "Labels", "HostConfig",
                 "NetworkSettings", "Mounts", "State", "Status")


class ContainerSummary(Mapping):
    """A record's `docker ps` entry. `State` and `Status` (which a handler may override) and the
    fields filters read on every entry come from the record; the rest is decoded from the record's
    JSON only when read, so a list of 150,000 entries builds no dicts for them."""

    __slots__ = ("record", "state", "status", "_decoded")

    def __init__(self, record: ContainerRecord, state: str, status: str):
        self.record, self.state, self.status, self._decoded = record, state, status, None

    def __getitem__(self, key: str):
        if key == "State":
            return self.state
        if key == "Status":
            return self.status
        rec = self.record
        if key == "Image":
            return rec.image
        if key == "ImageID":
            return rec.image_id
        if key == "Id":
            return rec.id
        if key == "Created":
            return rec.created_seconds
        if self._decoded is None:
            self._decoded = json_parse.loads(rec._static_json + b"}")
        return self._decoded[key]

    def __setitem__(self, key: str, value: str) -> None:
        if key == "State":
            self.state = value
        elif key == "Status":
            self.status = value
        else:
            raise TypeError(f"a container summary's {key} comes from its record")

    def __iter__(self) -> Iterator[str]:
        return iter(_SUMMARY_KEYS)

    def __len__(self) -> int:
        return len(_SUMMARY_KEYS)

    def __repr__(self) -> str:
        return repr(dict(self))
