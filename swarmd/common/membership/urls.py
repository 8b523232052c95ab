"""Discovery URLs: what `swarm join`, `swarm manage` and `swarm list` are pointed at.

- `token://TOKEN`: a cluster created with `swarm create`, reached through the discovery daemon.
  With TLS the token also names the cluster CA: `SWMTKN-1-<sha256 of the CA>-<secret>`, and a
  joining daemon checks its `--tlscacert` against that digest before trusting the discovery.
- `etcd://HOST:PORT[,HOST:PORT]/PREFIX`: straight to etcd, nodes under `/PREFIX/nodes/`.
- `nodes://ADDR,ADDR`: a static list of agent addresses, with classic ranges
  (`127.0.0.[1:3]:4101`, `10.0.0.1:[4101:4103]`).
- `file:///path`: a static list in a file, one address (or range) per line, `#` comments.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

TOKEN_RE = re.compile(r"^[0-9a-fA-F]{32}$")
JOIN_TOKEN_RE = re.compile(r"^SWMTKN-1-([0-9a-fA-F]{64})-([0-9a-fA-F]{32})$")
_RANGE_RE = re.compile(r"\[(\d+):(\d+)\]")
MAX_RANGE = 65536
DEFAULT_ETCD_PORT = 2379


class URLError(ValueError):
    """A discovery URL or address list that cannot be used; the message says why."""


@dataclass(frozen=True)
class TokenURL:
    token: str
    ca_digest: str = ""              # SHA-256 of the cluster CA (hex) when the token names one


@dataclass(frozen=True)
class EtcdURL:
    endpoints: tuple[tuple[str, int], ...]
    prefix: str                      # "/PREFIX", no trailing slash


@dataclass(frozen=True)
class NodesURL:
    addrs: tuple[str, ...]


@dataclass(frozen=True)
class FileURL:
    path: Path


DiscoveryURL = TokenURL | EtcdURL | NodesURL | FileURL

SCHEMES = ("token", "etcd", "nodes", "file")


def well_formed_token(token: str) -> bool:
    return bool(TOKEN_RE.match(token))


def join_token(ca_digest: str, secret: str) -> str:
    """The TLS form of a cluster token: `SWMTKN-1-<CA digest>-<secret>`."""
    return f"SWMTKN-1-{ca_digest.lower()}-{secret.lower()}"


def parse(url: str) -> DiscoveryURL:
    """Parses a discovery URL; raises URLError with a message naming what is wrong."""
    if "://" not in url:
        raise URLError(f"invalid discovery URL {url!r}: expected one of "
                       + ", ".join(f"{s}://…" for s in SCHEMES))
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme == "token":
        token = rest.strip().rstrip("/")
        m = JOIN_TOKEN_RE.match(token)
        if m:
            return TokenURL(m.group(2).lower(), m.group(1).lower())
        if not well_formed_token(token):
            raise URLError("malformed token: a cluster token is 32 hexadecimal characters "
                           "(or SWMTKN-1-<CA digest>-<secret> with TLS) as printed by `swarm create`")
        return TokenURL(token.lower())
    if scheme == "etcd":
        return _parse_etcd(rest)
    if scheme == "nodes":
        addrs = parse_address_list(rest.split(","))
        if not addrs:
            raise URLError("nodes:// needs at least one HOST:PORT address")
        return NodesURL(tuple(addrs))
    if scheme == "file":
        if not rest.startswith("/"):
            raise URLError(f"file:// needs an absolute path (file:///path), got {url!r}")
        return FileURL(Path(rest))
    raise URLError(f"unsupported discovery scheme {scheme!r}: expected one of "
                   + ", ".join(f"{s}://" for s in SCHEMES))


def _parse_etcd(rest: str) -> EtcdURL:
    hosts, sep, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not sep or not prefix:
        raise URLError("etcd:// needs a key prefix: etcd://HOST:PORT[,HOST:PORT]/PREFIX")
    if not hosts:
        raise URLError("etcd:// needs at least one HOST:PORT")
    endpoints = tuple(parse_endpoint(h) for h in hosts.split(","))
    return EtcdURL(endpoints, "/" + prefix)


def parse_endpoint(text: str, default_port: int = DEFAULT_ETCD_PORT) -> tuple[str, int]:
    """'http://h:p', 'h:p' or 'h' -> (host, port) for an etcd client endpoint."""
    text = text.strip()
    for scheme in ("http://", "https://"):
        if text.lower().startswith(scheme):
            text = text[len(scheme):]
    text = text.rstrip("/")
    if not text:
        raise URLError("empty etcd endpoint")
    if text.startswith("["):                      # [v6]:port
        host, _, tail = text[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise URLError(f"invalid etcd endpoint {text!r}: missing host")
    return host, (_port(port_text, text) if port_text else default_port)


def parse_endpoints(text: str) -> list[tuple[str, int]]:
    """A comma-separated list of etcd endpoints (the `--etcd` flag)."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise URLError("no etcd endpoint given")
    return [parse_endpoint(p) for p in parts]


def _port(text: str, where: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise URLError(f"invalid port {text!r} in {where!r}")
    return int(text)


def expand_ranges(pattern: str) -> list[str]:
    """Expands every `[START:END]` range (inclusive) in `pattern`, leftmost varying slowest.

    `10.0.0.[1:3]:4101` -> 10.0.0.1:4101, 10.0.0.2:4101, 10.0.0.3:4101. A range keeps the width
    of a zero-padded start (`node[01:03]` -> node01…node03).
    """
    m = _RANGE_RE.search(pattern)
    if not m:
        if "[" in pattern and "]" not in pattern or "]" in pattern and "[" not in pattern:
            raise URLError(f"unbalanced brackets in {pattern!r}")
        return [pattern]
    start, end = int(m.group(1)), int(m.group(2))
    if start > end:
        raise URLError(f"invalid range [{m.group(1)}:{m.group(2)}] in {pattern!r}: start is after end")
    if end - start + 1 > MAX_RANGE:
        raise URLError(f"range [{m.group(1)}:{m.group(2)}] in {pattern!r} is too large")
    width = len(m.group(1)) if m.group(1).startswith("0") and len(m.group(1)) > 1 else 0
    head, tail = pattern[:m.start()], pattern[m.end():]
    out = []
    for i in range(start, end + 1):
        out.extend(head + str(i).zfill(width) + t for t in expand_ranges(tail))
    return out


def check_address(addr: str) -> str:
    """Validates HOST:PORT (or [V6]:PORT) and returns it."""
    if addr.startswith("["):
        host, _, tail = addr[1:].partition("]")
        if not tail.startswith(":"):
            raise URLError(f"invalid address {addr!r}: expected [HOST]:PORT")
        port = tail[1:]
    else:
        host, sep, port = addr.rpartition(":")
        if not sep:
            raise URLError(f"invalid address {addr!r}: expected HOST:PORT")
        if ":" in host:
            raise URLError(f"invalid address {addr!r}: put an IPv6 host in brackets, [HOST]:PORT")
    if not host:
        raise URLError(f"invalid address {addr!r}: missing host")
    _port(port, addr)
    return addr


def parse_address_list(items: list[str]) -> list[str]:
    """Expands and validates addresses; keeps the first of any duplicates, in order."""
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        item = item.strip()
        if not item:
            continue
        for addr in expand_ranges(item):
            check_address(addr)
            if addr not in seen:
                seen.add(addr)
                out.append(addr)
    return out


def parse_address_file(text: str) -> list[str]:
    """One address or range per line; blank lines and `#` comments (whole or trailing) ignored."""
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return parse_address_list([line for line in lines if line])


def read_address_file(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise URLError(f"cannot read node list {path}: {exc.strerror or exc}") from exc
    return parse_address_file(text)
