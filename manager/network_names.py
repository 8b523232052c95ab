"""Node-local network references, resolved as classic swarm did: pure functions, no I/O.

Engines outside swarm mode hold only node-local networks, so across the cluster a network is
named `node/name` (classic's `cluster/network.go` `Networks.Get`: an ID, a short ID, `name`,
`node/name` or `nodeID/name`, then an ID prefix). A plain name several nodes hold is one network
only when the manager made it on every node (the label below) or the engine predefines it;
otherwise it is ambiguous and refused with the candidates listed, in the engine's words.

A container created with `--net node/name` (`HostConfig.NetworkMode`, and the key of its
`NetworkingConfig.EndpointsConfig`) is pinned to that node and its engine receives the plain name,
as classic's `Cluster.createContainer` did.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

# engine-defined networks: every node has them under the same names
PREDEFINED = frozenset({"bridge", "host", "none"})
# set by the manager on a network it creates on every node from a plain name (compose's project
# networks): the copies are one network, addressed by the plain name
CLUSTER_LABEL = "com.docker.swarm.network.cluster-wide"
# NetworkMode values that are not a network's name
_MODES = ("default", "container:")


class NetworkRefError(Exception):
    """A network reference that names no network, or several; `str()` is the client's text."""

    status = 404


class NoSuchNetwork(NetworkRefError):
    def __init__(self, ref: str):
        super().__init__(f"network {ref} not found")   # the engine's words


class AmbiguousNetwork(NetworkRefError):
    """As the engine's `network X is ambiguous (N matches found on name)`, with the candidates."""

    status = 400

    def __init__(self, ref: str, candidates: Sequence[str], basis: str):
        super().__init__(f"network {ref} is ambiguous ({len(candidates)} matches found {basis}): "
                         + ", ".join(sorted(candidates)))
        self.candidates = tuple(sorted(candidates))


def is_cluster_wide(item: dict) -> bool:
    """Whether a network's copies on several nodes are one network under its plain name."""
    return item.get("Name") in PREDEFINED or (item.get("Labels") or {}).get(CLUSTER_LABEL) == "true"


def resolve(ref: str, held: Sequence[T], where: Callable[[T], tuple[str, str, dict]]) -> list[T]:
    """The networks `ref` names among `held`; `where(x)` gives (node name, node ID, engine's network
    row). One network unless a plain name names a cluster-wide one (then every node's copy).
    Raises NoSuchNetwork or AmbiguousNetwork."""
    rows = [(x, *where(x)) for x in held]
    by_id = [x for x, _, _, item in rows
             if ref and (item.get("Id") == ref or (len(ref) == 12 and str(item.get("Id", ""))[:12] == ref))]
    if by_id:
        return by_id[:1]
    by_name = [(x, node, item) for x, node, node_id, item in rows
               if ref in (item.get("Name"), f"{node}/{item.get('Name')}", f"{node_id}/{item.get('Name')}")]
    if len(by_name) == 1 or (by_name and all(is_cluster_wide(item) for _, _, item in by_name)):
        return [x for x, _, _ in by_name]
    if by_name:
        raise AmbiguousNetwork(ref, [f"{node}/{item.get('Name')}" for _, node, item in by_name], "on name")
    by_prefix = [(x, node, item) for x, node, _, item in rows if ref and str(item.get("Id", "")).startswith(ref)]
    if len(by_prefix) == 1:
        return [by_prefix[0][0]]
    if by_prefix:
        raise AmbiguousNetwork(ref, [f"{node}/{item.get('Name')}" for _, node, item in by_prefix],
                               "based on ID prefix")
    raise NoSuchNetwork(ref)


def _node_network(value: object, node_named: Callable[[str], object]) -> tuple[str, str] | None:
    """(node, plain name) when `value` is `node/name` for a node the cluster knows."""
    if not isinstance(value, str) or value.startswith(_MODES):
        return None
    node, sep, plain = value.partition("/")
    if not sep or not node or not plain or "/" in plain or not node_named(node):
        return None
    return node, plain


def pinned_to_network_node(body: dict, node_named: Callable[[str], object]) -> dict:
    """The create body for a container on a `node/name` network: the plain name for the engine (in
    `NetworkMode` and the `EndpointsConfig` key) and `constraint:node==node` added, so the
    scheduler places it where the network is. Anything else (or a malformed body, which the
    create's own checks refuse) is returned as it is. `node_named(name)` is truthy for a node."""
    host_config = body.get("HostConfig") if isinstance(body, dict) else None
    if not isinstance(host_config, dict):
        return body
    found = _node_network(host_config.get("NetworkMode"), node_named)
    if found is None:
        return body
    node, plain = found
    out = {**body, "HostConfig": {**host_config, "NetworkMode": plain}}
    networking = body.get("NetworkingConfig")
    endpoints = networking.get("EndpointsConfig") if isinstance(networking, dict) else None
    if isinstance(endpoints, dict) and host_config["NetworkMode"] in endpoints:
        renamed = {(plain if k == host_config["NetworkMode"] else k): v for k, v in endpoints.items()}
        out["NetworkingConfig"] = {**networking, "EndpointsConfig": renamed}
    env = body.get("Env")
    if env is None or isinstance(env, list):
        rule = f"constraint:node=={node}"
        out["Env"] = list(env or []) + ([] if rule in (env or []) else [rule])
    return out


def name_filter_matches(patterns: Sequence[str], names: Sequence[str]) -> bool:
    """The engine's `name`/`id` list filters: a pattern matches exactly or as a regular expression
    found anywhere (an invalid expression matches nothing), against any of `names`."""
    for pattern in patterns:
        for name in names:
            if pattern == name:
                return True
            try:
                if re.search(pattern, name):
                    return True
            except re.error:
                continue
    return False
