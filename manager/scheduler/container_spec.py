"""What the scheduler needs to know about a container to create, read from a Docker create body.

Swarm rules travel, as in classic swarm, either as environment entries (`-e constraint:node==n1`,
`-e affinity:container==db`, `-e reschedule:on-node-failure`) or as JSON-list labels
(`com.docker.swarm.constraints`, `.affinities`, `.reschedule-policies`). `normalized_create_body`
moves the environment form into the labels, so the engine never sees the `constraint:` entries and
the rules stay with the container. Classic's documented shell-escaped operator `\\!=` (`!` is special
in interactive bash) is read as `!=` in both forms, the label's invalid JSON escape `\\!` included.

CPUs follow classic swarm's `-c` semantics: `--cpu-shares N` (`HostConfig.CpuShares`) reserves N
CPUs, and the engine is given the share of its node that means (classic's cluster/engine.go:
`ceil(N * 1024 / node CPUs)`); the CPUs asked are kept in the RESERVED_CPUS_LABEL, so that the
container's reservation (and a rescheduled copy's request) is read back from it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from swarmd.manager.scheduler.errors import InvalidSpec
from swarmd.manager.scheduler.filters.expressions import Expression, parse_expressions
from swarmd.manager.scheduler.snapshot import PortBinding

CONSTRAINTS_LABEL = "com.docker.swarm.constraints"
AFFINITIES_LABEL = "com.docker.swarm.affinities"
RESCHEDULE_LABEL = "com.docker.swarm.reschedule-policies"
RESCHEDULE_POLICIES = ("off", "on-node-failure")
RESERVED_CPUS_LABEL = "com.docker.swarm.reserved-cpus"
# the labels docker-compose gives one container of a service: a container carrying the same values
# is the one it replaces when it recreates the service
COMPOSE_IDENTITY_LABELS = ("com.docker.compose.project", "com.docker.compose.service",
                           "com.docker.compose.container-number")

# env prefix -> label carrying the same rules
_RULE_LABELS = {"constraint": CONSTRAINTS_LABEL, "affinity": AFFINITIES_LABEL, "reschedule": RESCHEDULE_LABEL}


@dataclass(frozen=True)
class Dependency:
    """A container that must be on the same node: `kind` is "volumes-from", "link" or "net"."""

    kind: str
    container: str     # name, ID or ID prefix (optionally `node/name`)
    option: str        # as the docker CLI spells it, for messages: `--link=db:alias`


@dataclass(frozen=True)
class _Rules:
    """Swarm rules found in a create body, label entries first, duplicates dropped."""

    constraints: tuple[str, ...]
    affinities: tuple[str, ...]
    reschedule: tuple[str, ...]
    env: list | None          # the environment without the rule entries (None when absent)


def _label_list(labels: dict, key: str, lenient: bool = False) -> list[str]:
    raw = labels.get(key)
    if raw is None or raw == "":
        return []
    try:
        value = json.loads(raw) if isinstance(raw, str) else (raw if lenient else None)
    except ValueError:
        value = raw if lenient else None
        if isinstance(raw, str) and "\\!" in raw:
            # classic's shell-escaped `\!=` is no JSON escape (classic's json.Unmarshal dropped the
            # whole label without a word); `\!` means nothing else in JSON, so read it as `!`
            try:
                value = json.loads(raw.replace("\\!", "!"))
            except ValueError:
                pass
    if lenient:         # a container the engine holds: take a bare value as a one-entry list
        return [str(v) for v in (value if isinstance(value, list) else [value])]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidSpec(f'invalid label {key}={raw!r}: expected a JSON list of strings, e.g. ["node==node1"]')
    return value


def _dedup(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _labels_of(body: dict, lenient: bool = False) -> dict:
    labels = body.get("Labels")
    if labels is None or (lenient and not isinstance(labels, dict)):
        return {}
    if not isinstance(labels, dict):
        raise InvalidSpec("invalid Labels: expected an object of strings")
    return labels


def _rules(body: dict, lenient: bool = False) -> _Rules:
    """The rules of a create request (malformed ones raise InvalidSpec) or, `lenient`, of a
    container's config as the engine holds it (anything unreadable is skipped)."""
    labels = _labels_of(body, lenient)
    found = {kind: _label_list(labels, label, lenient) for kind, label in _RULE_LABELS.items()}
    env = body.get("Env")
    rest: list | None = None
    if lenient and not isinstance(env, list):
        env = None
    if env is not None:
        if not isinstance(env, list):
            raise InvalidSpec("invalid Env: expected a list of strings")
        rest = []
        for entry in env:
            if isinstance(entry, str):
                kind, sep, value = entry.partition(":")
                if sep and kind in found:
                    # an engine-held `reschedule:=on-node-failure` was always read as the policy
                    found[kind].append(value.lstrip("=") if lenient else value)
                    continue
            rest.append(entry)
    return _Rules(constraints=_dedup(_unescaped(found["constraint"])), affinities=_dedup(_unescaped(found["affinity"])),
                  reschedule=_dedup(found["reschedule"]), env=rest)


def _unescaped(rules: list) -> list:
    """`node\\!=node1` (classic's documented shell-escaped form) as `node!=node1`."""
    return [r.replace("\\!=", "!=", 1) if isinstance(r, str) else r for r in rules]


def reschedule_policies(config: dict) -> tuple[str, ...]:
    """The reschedule policies of an existing container, from its config (the inspect document's
    `Config`): its label, then any `reschedule:` entry left in its environment; never raises."""
    return _rules(config, lenient=True).reschedule


def _int_field(section: dict, key: str, where: str) -> int:
    value = section.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != int(value):
        raise InvalidSpec(f"invalid {where}{key} {value!r}: expected a non-negative integer")
    return int(value)


def reserved_cpus(config: dict, host_config: dict) -> float:
    """The CPUs a container reserves, from its engine-held `Config` and `HostConfig`: the CPUs it
    asked for through the manager (RESERVED_CPUS_LABEL), else its `--cpus` (NanoCpus); never raises."""
    labels = config.get("Labels") if isinstance(config, dict) else None
    raw = labels.get(RESERVED_CPUS_LABEL) if isinstance(labels, dict) else None
    try:
        asked = float(raw) if raw is not None else 0.0
    except ValueError:
        asked = 0.0
    nano = host_config.get("NanoCpus") if isinstance(host_config, dict) else 0
    nano_cpus = nano / 1e9 if isinstance(nano, (int, float)) and not isinstance(nano, bool) else 0.0
    return max(asked if math.isfinite(asked) and asked > 0 else 0.0, nano_cpus)


def _asked_cpus(body: dict, host_config: dict) -> float:
    """CPUs requested: `--cpu-shares N` as N CPUs (classic's `-c`), `--cpus`, whichever is more.
    A body that carries RESERVED_CPUS_LABEL (a rescheduled container's) asks for that again: its
    CpuShares are the engine's share value, not CPUs."""
    labels = body.get("Labels") or {}
    if RESERVED_CPUS_LABEL in labels:
        return reserved_cpus(body, host_config)
    shares = _int_field(host_config, "CpuShares", "HostConfig.")
    return max(float(shares), _int_field(host_config, "NanoCpus", "HostConfig.") / 1e9)


def _compose_identity(labels: dict) -> tuple[tuple[str, str], ...]:
    """The compose project, service and container number of the container, when it has all three."""
    found = tuple((k, labels.get(k)) for k in COMPOSE_IDENTITY_LABELS)
    return found if all(isinstance(v, str) and v for _, v in found) else ()


def engine_cpu_shares(cpus: float, node_cpus: float) -> int:
    """The engine's CpuShares meaning `cpus` of a node with `node_cpus` (classic's cluster/engine.go:
    `ceil(N * 1024 / node CPUs)`), never under the kernel's minimum of 2."""
    if node_cpus <= 0:
        return max(2, int(math.ceil(cpus * 1024)))
    return max(2, int(math.ceil(cpus * 1024 / node_cpus)))


def _parse_port_key(key: str) -> tuple[str, str]:
    port, _, proto = str(key).partition("/")
    return port, (proto or "tcp").lower()


def _host_port(text: str, where: str) -> int | None:
    """A fixed host port; None for an ephemeral (empty/0) port or a range the engine picks from."""
    text = str(text).strip()
    if text in ("", "0"):
        return None
    if text.isdigit():
        port = int(text)
        if port > 65535:
            raise InvalidSpec(f'invalid host port "{text}" for {where}: expected 1-65535')
        return port
    low, dash, high = text.partition("-")
    if dash and low.isdigit() and high.isdigit():
        return None
    raise InvalidSpec(f'invalid host port "{text}" for {where}: expected a number or a range LOW-HIGH')


def _requested_ports(body: dict, host_config: dict, network_mode: str) -> tuple[PortBinding, ...]:
    out: list[PortBinding] = []
    if network_mode == "host":
        # with the host's network stack, every exposed port is a host port
        for key in body.get("ExposedPorts") or {}:
            port, proto = _parse_port_key(key)
            if port.isdigit() and int(port) > 0:
                out.append(PortBinding("0.0.0.0", int(port), proto))
        return tuple(dict.fromkeys(out))
    bindings = host_config.get("PortBindings") or {}
    if not isinstance(bindings, dict):
        raise InvalidSpec("invalid HostConfig.PortBindings: expected an object")
    for key, entries in bindings.items():
        _, proto = _parse_port_key(key)
        for b in entries or []:
            if not isinstance(b, dict):
                raise InvalidSpec(f"invalid port binding for {key}: expected an object with HostIp/HostPort")
            port = _host_port(b.get("HostPort") or "", key)
            if port is not None:
                out.append(PortBinding(b.get("HostIp") or "0.0.0.0", port, proto))
    return tuple(dict.fromkeys(out))


def _string_list(section: dict, key: str) -> list[str]:
    value = section.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidSpec(f"invalid HostConfig.{key}: expected a list of strings")
    return value


def _dependencies(host_config: dict, network_mode: str) -> tuple[Dependency, ...]:
    out: list[Dependency] = []
    for entry in _string_list(host_config, "VolumesFrom"):
        ref = entry.split(":", 1)[0].lstrip("/")
        if ref:
            out.append(Dependency("volumes-from", ref, f"--volumes-from={entry}"))
    for entry in _string_list(host_config, "Links"):
        ref = entry.split(":", 1)[0].lstrip("/")
        if ref:
            out.append(Dependency("link", ref, f"--link={entry}"))
    if network_mode.startswith("container:"):
        ref = network_mode.split(":", 1)[1].lstrip("/")
        if not ref:
            raise InvalidSpec(f'invalid network mode "{network_mode}": expected container:NAME|ID')
        out.append(Dependency("net", ref, f"--net={network_mode}"))
    return tuple(out)


# Top-level container config fields and the JSON types the engine accepts (null is always fine).
# The engine answers a wrongly typed field with a 500; the manager refuses it with a 400.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    **{k: (str,) for k in ("Image", "Hostname", "Domainname", "User", "WorkingDir", "StopSignal", "MacAddress")},
    **{k: (bool,) for k in ("AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin", "StdinOnce",
                            "NetworkDisabled", "ArgsEscaped")},
    **{k: (str, list) for k in ("Cmd", "Entrypoint")},
    **{k: (list,) for k in ("Env", "Shell", "OnBuild")},
    **{k: (dict,) for k in ("Labels", "ExposedPorts", "Volumes", "HostConfig", "NetworkingConfig", "Healthcheck")},
    "StopTimeout": (int,),
}
_TYPE_NAMES = {str: "a string", bool: "a boolean", list: "a list", dict: "an object", int: "an integer"}


def _check_field_types(body: dict) -> None:
    for key, types in _FIELD_TYPES.items():
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            raise InvalidSpec(f"invalid {key}: expected {' or '.join(_TYPE_NAMES[t] for t in types)}")


def _check_reschedule(policies: tuple[str, ...]) -> None:
    if len(policies) > 1:
        raise InvalidSpec(f"too many reschedule policies {list(policies)}: give at most one")
    for p in policies:
        if p not in RESCHEDULE_POLICIES:
            raise InvalidSpec(f'invalid reschedule policy "{p}": expected one of {", ".join(RESCHEDULE_POLICIES)}')


@dataclass(frozen=True)
class ContainerSpec:
    name: str | None
    image: str
    constraints: tuple[Expression, ...] = ()
    affinities: tuple[Expression, ...] = ()
    memory: int = 0                             # bytes requested (HostConfig.Memory)
    cpus: float = 0.0                           # CPUs requested (CpuShares as CPUs, or NanoCpus / 1e9)
    share_cpus: float = 0.0                     # CPUs asked as CpuShares (the engine gets a share value)
    ports: tuple[PortBinding, ...] = ()         # fixed host ports it will bind
    network_mode: str = ""
    dependencies: tuple[Dependency, ...] = ()
    reschedule_policies: tuple[str, ...] = ()
    compose_identity: tuple[tuple[str, str], ...] = ()   # COMPOSE_IDENTITY_LABELS with their values

    @property
    def has_soft_rules(self) -> bool:
        return any(e.soft for e in self.constraints) or any(e.soft for e in self.affinities)

    @property
    def reschedule_on_node_failure(self) -> bool:
        return "on-node-failure" in self.reschedule_policies

    @property
    def replaces(self) -> tuple[str, ...]:
        """Containers this one replaces: those named by a hard `affinity:container==X` with a plain
        value, as docker-compose's recreate names the container it stopped (see filters/port.py)."""
        return tuple(e.value for e in self.affinities
                     if e.key == "container" and e.operator == "==" and not e.soft and e.is_plain)

    @classmethod
    def from_create(cls, body: dict, name: str | None = None) -> ContainerSpec:
        """Reads a `POST /containers/create` body; malformed swarm rules raise InvalidSpec."""
        if not isinstance(body, dict):
            raise InvalidSpec("invalid create request: expected a JSON object")
        _check_field_types(body)
        host_config = body.get("HostConfig")
        if host_config is None:
            host_config = {}
        if not isinstance(host_config, dict):
            raise InvalidSpec("invalid HostConfig: expected an object")
        network_mode = str(host_config.get("NetworkMode") or "")
        rules = _rules(body)
        _check_reschedule(rules.reschedule)
        labels = body.get("Labels") or {}
        share_cpus = (reserved_cpus(body, {}) if RESERVED_CPUS_LABEL in labels
                      else float(_int_field(host_config, "CpuShares", "HostConfig.")))
        return cls(
            name=(name or "").lstrip("/") or None,
            image=str(body.get("Image") or ""),
            constraints=parse_expressions("constraint", rules.constraints),
            affinities=parse_expressions("affinity", rules.affinities),
            memory=_int_field(host_config, "Memory", "HostConfig."),
            cpus=_asked_cpus(body, host_config),
            share_cpus=share_cpus,
            ports=_requested_ports(body, host_config, network_mode),
            network_mode=network_mode,
            dependencies=_dependencies(host_config, network_mode),
            reschedule_policies=rules.reschedule,
            compose_identity=_compose_identity(labels),
        )

    def normalized_create_body(self, body: dict, node_cpus: float | None = None) -> dict:
        """The body for the engine of a node with `node_cpus` CPUs (see normalized_create_body);
        CPUs asked as CpuShares become that node's share value, and are kept in a label."""
        out = normalized_create_body(body)
        if self.share_cpus > 0 and node_cpus is not None:
            out["HostConfig"] = {**(out.get("HostConfig") or {}),
                                 "CpuShares": engine_cpu_shares(self.share_cpus, node_cpus)}
            out["Labels"] = {**(out.get("Labels") or {}), RESERVED_CPUS_LABEL: f"{self.share_cpus:g}"}
        return out


def normalized_create_body(body: dict) -> dict:
    """A copy of `body` for the engine: swarm rules moved from Env into the JSON-list labels."""
    rules = _rules(body)
    out = dict(body)
    labels = dict(_labels_of(body))
    for values, label in ((rules.constraints, CONSTRAINTS_LABEL), (rules.affinities, AFFINITIES_LABEL),
                          (rules.reschedule, RESCHEDULE_LABEL)):
        if values:
            labels[label] = json.dumps(list(values))
        else:
            labels.pop(label, None)
    if labels or "Labels" in body:
        out["Labels"] = labels
    if rules.env is not None:
        out["Env"] = rules.env
    return out
