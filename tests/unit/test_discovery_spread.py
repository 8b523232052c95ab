"""Agents given several discovery daemons spread over them, each failing over in the written order."""
from __future__ import annotations

import hashlib
from collections import Counter

from swarmd.common.membership.spread import split, spread, start_index

THREE = "10.0.0.1:4000,10.0.0.2:4000,10.0.0.3:4000"


def test_one_address_or_no_key_is_left_as_given():
    assert spread("10.0.0.1:4000", "node-a") == "10.0.0.1:4000"
    assert spread(THREE, "") == THREE


def test_every_order_is_a_rotation_of_the_written_list():
    rotations = {",".join(split(THREE)[i:] + split(THREE)[:i]) for i in range(3)}
    seen = {spread(THREE, f"node-{i}") for i in range(200)}
    assert seen == rotations


def test_the_same_node_always_starts_at_the_same_daemon():
    # sha256, not Python's per-process salted hash: the choice survives a restart
    assert start_index("hollow-000042-1a2b3c4d", 2) == start_index("hollow-000042-1a2b3c4d", 2)
    assert spread(THREE, "node-7") == spread(" 10.0.0.1:4000 , 10.0.0.2:4000,10.0.0.3:4000,", "node-7")
    assert start_index("a", 3) == int.from_bytes(hashlib.sha256(b"a").digest()[:8], "big") % 3


def test_a_fleet_lands_evenly_on_two_and_three_daemons():
    for count in (2, 3):
        firsts = Counter(start_index(f"hollow-{i:06d}-{i * 7919:08x}", count) for i in range(5000))
        assert set(firsts) == set(range(count))
        assert max(firsts.values()) - min(firsts.values()) < 5000 * 0.05, firsts


def test_the_failover_order_after_the_first_keeps_the_written_order():
    for i in range(50):
        order = split(spread(THREE, f"n{i}"))
        start = split(THREE).index(order[0])
        assert order == [split(THREE)[(start + k) % 3] for k in range(3)]
