"""Which host bridges belong to one lab engine: by network id, by asked-for name, by address pool."""
from __future__ import annotations

import ipaddress

from swarmd.localcluster.engine import NETWORK_DB, bridges_in_data, bridges_of_engine
from swarmd.localcluster.slots import Slot, MAX_ENGINES

NID = "3f9a" + "0" * 56 + "beef"


def _addr(cidr: str) -> list[ipaddress.IPv4Interface]:
    return [ipaddress.IPv4Interface(cidr)]


def test_bridges_are_picked_by_id_name_and_pool_and_no_others():
    host = {
        f"br-{NID[:12]}": _addr("10.200.5.1/24"),     # its network, addressed anywhere
        "mybridge": [],                               # asked for by a network option
        "br-aaaaaaaaaaaa": _addr("10.7.3.1/24"),      # inside its pool, id unknown (engine died)
        "br-bbbbbbbbbbbb": _addr("10.8.3.1/24"),      # another engine's pool
        "br-cccccccccccc": [],                        # nobody we know
        "swd0e0": _addr("10.7.0.1/24"),               # not a dockerd bridge name, even in the pool
        "docker0": _addr("172.17.0.1/16"),
    }
    got = bridges_of_engine({f"br-{NID[:12]}", "mybridge", "gone0"}, "10.7.0.0/16", host)
    assert got == sorted([f"br-{NID[:12]}", "mybridge", "br-aaaaaaaaaaaa"])
    assert bridges_of_engine(set(), None, host) == []


def test_bridge_names_are_read_from_the_engine_data_even_when_it_is_dead(tmp_path):
    db = tmp_path / NETWORK_DB
    db.parent.mkdir(parents=True)
    db.write_bytes(b"\x00junk docker/network/v1.0/network/" + NID.encode() + b"/\x00{...}"
                   b"docker/network/v1.0/endpoint/" + b"1" * 64 + b"\x00"
                   b'docker/network/v1.0/bridge/' + b"2" * 64 + b'/\x00{"BridgeName":"custom0","ID":"x"}')
    assert bridges_in_data(tmp_path) == {f"br-{NID[:12]}", "custom0"}
    assert bridges_in_data(tmp_path / "missing") == set()


def test_every_engine_of_every_slot_has_its_own_address_pool():
    pools = set()
    for slot in range(40):
        s = Slot(slot, None, -1)
        for engine in range(MAX_ENGINES):
            pool = ipaddress.IPv4Network(s.address_pool(engine))
            assert pool.prefixlen == 16
            assert not pool.overlaps(ipaddress.IPv4Network("172.31.0.0/16"))   # the lab bridges
            pools.add(pool)
    assert len(pools) == 40 * MAX_ENGINES
