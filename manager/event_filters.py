"""Filtering Engine API events (`docker events --filter …`), as the engine does, plus `node`."""
from __future__ import annotations

from swarmd.manager.httpd.errors import ApiError

_KNOWN = {"config", "container", "daemon", "event", "image", "label", "network", "node", "plugin",
          "scope", "secret", "service", "type", "volume"}


def validate(filters: dict[str, list[str]]) -> None:
    for key in filters:
        if key not in _KNOWN:
            raise ApiError(400, f"invalid filter '{key}'")


def _action(event: dict) -> str:
    return event.get("Action") or event.get("status") or ""


def matches(event: dict, filters: dict[str, list[str]]) -> bool:
    actor = event.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    etype = event.get("Type") or ""
    for key, values in filters.items():
        if not values:
            continue
        if key == "type":
            ok = etype in values
        elif key == "event":
            action = _action(event)
            ok = action in values or action.split(":")[0] in values
        elif key in ("container", "image", "network", "volume", "plugin", "daemon"):
            if etype != key and not (key == "image" and etype == "container"):
                return False
            if key == "image" and etype == "container":
                candidates = {attrs.get("image", "")}
            else:
                candidates = {actor.get("ID", ""), attrs.get("name", "")}
            ok = any(v in candidates or (len(v) >= 4 and actor.get("ID", "").startswith(v)) for v in values)
        elif key == "label":
            ok = all((attrs.get(k) == v) if sep else (k in attrs)
                     for k, sep, v in (item.partition("=") for item in values))
        elif key == "node":
            node = event.get("node") or {}
            ok = node.get("Name") in values or node.get("Id") in values
        elif key == "scope":
            ok = (event.get("scope") or "local") in values
        else:
            ok = False   # swarm-mode objects (service, secret, config, node) never occur here
        if not ok:
            return False
    return True
