"""The one answer to "does this request ask to take the connection over?" (attach, exec start).

`Connection: Upgrade` or an `Upgrade:` header, either one. The docker CLI and SDK send both;
dockerd hijacks attach whatever the headers and answers 101 when `Upgrade:` is there, 200
otherwise. The manager (serving and forwarding between managers) and the agent (relaying to its
engine) ask the same question here, so a client sending only one header gets the same two-way
stream on every path.
"""
from __future__ import annotations

from collections.abc import Iterable


def asks_for_upgrade(headers: Iterable[tuple[str, str]]) -> bool:
    for name, value in headers:
        lname = name.lower()
        if (lname == "connection" and "upgrade" in value.lower()) or (lname == "upgrade" and value):
            return True
    return False
