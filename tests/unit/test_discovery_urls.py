"""Discovery URLs, address ranges, node-list files, etcd endpoints, and the watch diff."""
from __future__ import annotations

from pathlib import Path

import pytest

from swarmd.proto.swarm.v1 import types_pb2
from swarmd.cli.list import format_nodes
from swarmd.common.membership import MembershipError, open_membership, open_registrar
from swarmd.common.membership import urls
from swarmd.common.membership.watch import Backoff, apply, diff

TOKEN = "0123456789abcdef0123456789abcdef"


def test_token_url():
    assert urls.parse(f"token://{TOKEN}") == urls.TokenURL(TOKEN)
    assert urls.parse(f"token://{TOKEN.upper()}") == urls.TokenURL(TOKEN)


@pytest.mark.parametrize("token", ["", "abc", TOKEN + "0", TOKEN[:-1] + "g", "../" + TOKEN[3:]])
def test_malformed_token(token):
    with pytest.raises(urls.URLError, match="malformed token"):
        urls.parse(f"token://{token}")


def test_etcd_url():
    parsed = urls.parse("etcd://127.0.0.1:2379,10.0.0.2:2380/swarm/prod/")
    assert parsed == urls.EtcdURL((("127.0.0.1", 2379), ("10.0.0.2", 2380)), "/swarm/prod")
    assert urls.parse("etcd://etcd.local/x") == urls.EtcdURL((("etcd.local", 2379),), "/x")


@pytest.mark.parametrize("url,message", [
    ("etcd://127.0.0.1:2379", "needs a key prefix"),
    ("etcd://127.0.0.1:2379/", "needs a key prefix"),
    ("etcd:///prefix", "at least one"),
    ("etcd://127.0.0.1:99999/p", "invalid port"),
])
def test_bad_etcd_url(url, message):
    with pytest.raises(urls.URLError, match=message):
        urls.parse(url)


def test_nodes_url_with_ranges():
    parsed = urls.parse("nodes://127.0.0.[1:3]:4101,10.0.0.1:[4101:4102],h:1")
    assert parsed.addrs == ("127.0.0.1:4101", "127.0.0.2:4101", "127.0.0.3:4101",
                            "10.0.0.1:4101", "10.0.0.1:4102", "h:1")


def test_ranges():
    assert urls.expand_ranges("n[1:2]:[7:8]") == ["n1:7", "n1:8", "n2:7", "n2:8"]
    assert urls.expand_ranges("node[08:10]:1") == ["node08:1", "node09:1", "node10:1"]
    assert urls.expand_ranges("h:[5:5]") == ["h:5"]
    assert urls.expand_ranges("[::1]:4000") == ["[::1]:4000"]


@pytest.mark.parametrize("text,message", [
    ("10.0.0.[3:1]:4000", "start is after end"),
    ("10.0.0.[1:3:4000", "unbalanced"),
    ("10.0.0.1", "expected HOST:PORT"),
    ("10.0.0.1:0", "invalid port"),
    ("10.0.0.1:http", "invalid port"),
    (":4000", "missing host"),
    ("::1:4000", "brackets"),
    ("h:[65535:65536]", "invalid port"),
    ("h:[1:70000]", "too large"),
])
def test_bad_addresses(text, message):
    with pytest.raises(urls.URLError, match=message):
        urls.parse(f"nodes://{text}")


def test_duplicates_keep_first_order():
    assert urls.parse("nodes://b:1,a:1,b:1").addrs == ("b:1", "a:1")


def test_empty_nodes_url():
    with pytest.raises(urls.URLError, match="at least one"):
        urls.parse("nodes://")


def test_address_file():
    text = "# agents\n127.0.0.[1:2]:4101   # two of them\n\n  10.0.0.9:4100\n#10.0.0.8:4100\n"
    assert urls.parse_address_file(text) == ["127.0.0.1:4101", "127.0.0.2:4101", "10.0.0.9:4100"]


def test_file_url(tmp_path: Path):
    path = tmp_path / "nodes"
    assert urls.parse(f"file://{path}") == urls.FileURL(path)
    with pytest.raises(urls.URLError, match="cannot read node list"):
        urls.read_address_file(path)
    with pytest.raises(urls.URLError, match="absolute path"):
        urls.parse("file://relative/nodes")


@pytest.mark.parametrize("url,message", [
    ("127.0.0.1:4000", "invalid discovery URL"),
    ("consul://127.0.0.1/x", "unsupported discovery scheme 'consul'"),
])
def test_bad_scheme(url, message):
    with pytest.raises(urls.URLError, match=message):
        urls.parse(url)


def test_etcd_endpoints():
    assert urls.parse_endpoints("http://127.0.0.1:2379,10.0.0.1:2380, etcd") == [
        ("127.0.0.1", 2379), ("10.0.0.1", 2380), ("etcd", 2379)]
    assert urls.parse_endpoint("http://[::1]:2379/") == ("::1", 2379)
    with pytest.raises(urls.URLError):
        urls.parse_endpoints(" , ")


def test_open_errors_are_membership_errors():
    with pytest.raises(MembershipError, match="needs the discovery daemon's address"):
        open_membership(f"token://{TOKEN}")
    with pytest.raises(MembershipError, match="needs the discovery daemon's address"):
        open_registrar(f"token://{TOKEN}", None)
    with pytest.raises(MembershipError, match="malformed token"):
        open_membership("token://nope", "127.0.0.1:1")


def _node(node_id: str, name: str, state=types_pb2.NODE_STATE_HEALTHY) -> types_pb2.Node:
    return types_pb2.Node(info=types_pb2.NodeInfo(id=node_id, name=name, addr=f"{name}:4100"), state=state)


def test_diff_after_reconnection():
    a, b, c = _node("a", "n1"), _node("b", "n2"), _node("c", "n3")
    b2 = _node("b", "n2", types_pb2.NODE_STATE_PENDING)
    events = diff({"a": a, "b": b}, {"b": b2, "c": c})
    assert [(e.kind, e.node.info.id) for e in events] == [("updated", "b"), ("joined", "c"), ("left", "a")]
    assert events[2].node.state == types_pb2.NODE_STATE_UNHEALTHY
    assert diff({"a": a}, {"a": _node("a", "n1")}) == []


def test_apply_normalises_kinds():
    known = {}
    assert apply(known, "updated", _node("a", "n1")).kind == "joined"
    assert apply(known, "joined", _node("a", "n1")) is None
    assert apply(known, "joined", _node("a", "renamed")).kind == "updated"
    gone = apply(known, "left", types_pb2.Node(info=types_pb2.NodeInfo(id="a")))
    assert gone.kind == "left" and gone.node.info.name == "renamed"
    assert apply(known, "left", types_pb2.Node(info=types_pb2.NodeInfo(id="a"))) is None


def test_backoff_doubles_to_a_cap():
    b = Backoff(0.25, 5.0)
    assert [b.next() for _ in range(7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    b.reset()
    assert b.next() == 0.25


def test_list_format():
    lines = format_nodes([_node("b", "node2", types_pb2.NODE_STATE_UNHEALTHY), _node("a", "node10"),
                          _node("c", "n", types_pb2.NODE_STATE_PENDING)])
    assert [line.split() for line in lines] == [
        ["n", "n:4100", "pending"], ["node10", "node10:4100", "healthy"], ["node2", "node2:4100", "unhealthy"]]
