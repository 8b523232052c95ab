"""Stopping the lab leaves no network bridge or route behind, whether its engines stop cleanly
or died first; each engine takes its networks' subnets from its own address pool."""
from __future__ import annotations

import ipaddress
import os
import signal
import subprocess

import pytest

from swarmd.localcluster.engine import host_bridges
from swarmd.localcluster.lab import Lab
from swarmd.localcluster.processes import wait_until


def _routes() -> str:
    return subprocess.run(["ip", "route", "show"], capture_output=True, text=True, check=True).stdout


def _make_networks(engine, tag: str) -> dict[str, str]:
    """Two networks with a container on each (one asks for its own bridge name); returns
    bridge name -> subnet."""
    client = engine.client()
    made = {}
    for name, options in ((f"{tag}-plain", {}),
                          (f"{tag}-named", {"com.docker.network.bridge.name": f"swdt{tag}"})):
        net = client.networks.create(name, driver="bridge", options=options)
        net.reload()
        subnet = net.attrs["IPAM"]["Config"][0]["Subnet"]
        assert ipaddress.IPv4Network(subnet).subnet_of(ipaddress.IPv4Network(engine.address_pool)), \
            (subnet, engine.address_pool)
        client.containers.run("busybox", ["sleep", "300"], detach=True, network=name)
        made[options.get("com.docker.network.bridge.name", f"br-{net.id[:12]}")] = subnet
    client.close()
    return made


@pytest.fixture
def small_lab():
    lab = Lab(engines=2, registry=False, prefix="bridges").start()
    yield lab
    lab.stop()      # a second stop is harmless; it also cleans up after a failed assertion


def _assert_gone(made: dict[str, str]) -> None:
    bridges = host_bridges()
    routes = _routes()
    for bridge, subnet in made.items():
        assert bridge not in bridges, f"{bridge} ({subnet}) was left on the host"
        assert subnet not in routes, f"a route to {subnet} was left:\n{routes}"


def test_stopping_the_lab_removes_its_networks_bridges_and_routes(small_lab):
    made = {}
    for i, engine in enumerate(small_lab.engines):
        made |= _make_networks(engine, f"a{small_lab.slot.index}{i}")
    bridges = host_bridges()
    for bridge, subnet in made.items():
        assert bridge in bridges, f"the engine did not make {bridge}"
        assert subnet in _routes()
    small_lab.stop()
    _assert_gone(made)


def test_an_engine_that_died_first_still_has_its_bridges_deleted(small_lab):
    dead, alive = small_lab.engines
    made_dead = _make_networks(dead, f"d{small_lab.slot.index}")
    # someone else's bridge in the same address range family, named like dockerd's: not ours
    stranger = f"br-{small_lab.slot.index:02d}feedbeef0"[:15]
    subprocess.run(["ip", "link", "add", stranger, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", "10.250.77.1/24", "dev", stranger], check=True)
        os.kill(dead.daemon.pid, signal.SIGKILL)
        wait_until(lambda: not dead.daemon.running(), 20, "dockerd to die")
        assert set(made_dead) <= set(host_bridges()), "dockerd removed its bridges as it died"
        small_lab.stop()
        _assert_gone(made_dead)
        assert stranger in host_bridges(), "a bridge that was not the engine's was deleted"
    finally:
        subprocess.run(["ip", "link", "del", stranger], check=False)
