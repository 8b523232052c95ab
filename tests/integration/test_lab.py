"""The lab itself: real engines, a real etcd and a real registry are up and independent."""
from __future__ import annotations

import asyncio
import urllib.request

import aetcd
import docker
import pytest


def test_each_engine_runs_containers(lab):
    for engine in lab.engines:
        client = engine.client()
        out = client.containers.run("busybox", ["sh", "-c", "echo hello from $0", engine.name], remove=True)
        assert out == f"hello from {engine.name}\n".encode()
        assert b"Hello from Docker!" in client.containers.run("hello-world", remove=True)


def test_engines_are_separate_hosts(lab):
    ids = set()
    for engine in lab.engines:
        info = engine.client().info()
        ids.add(info["ID"])
        assert f"lab.index={lab.engines.index(engine) + 1}" in info["Labels"]
    assert len(ids) == len(lab.engines)
    c = lab.engines[0].client().containers.run("busybox", ["sleep", "30"], detach=True, name="only-on-node1")
    try:
        with pytest.raises(docker.errors.NotFound):
            lab.engines[1].client().containers.get("only-on-node1")
    finally:
        c.remove(force=True)


def test_lab_images_have_the_same_id_everywhere(lab):
    for ref in ("busybox:latest", "hello-world:latest"):
        ids = {e.client().images.get(ref).id for e in lab.engines}
        assert len(ids) == 1, ids


def test_published_ports_bind_each_engines_own_address(lab):
    engine = lab.engines[1]
    c = engine.client().containers.run(
        "busybox", ["sh", "-c", "echo served > /var/www/index.html && httpd -f -p 80 -h /var/www"],
        detach=True, ports={"80/tcp": 18080},
    )
    try:
        c.reload()
        binding = c.attrs["NetworkSettings"]["Ports"]["80/tcp"][0]
        assert binding["HostIp"] == engine.host_ip
        def fetch():
            with urllib.request.urlopen(f"http://{engine.host_ip}:18080/", timeout=2) as r:
                return r.read()
        from swarmd.localcluster.processes import wait_until
        assert wait_until(fetch, 10, "httpd") == b"served\n"
    finally:
        c.remove(force=True)


def test_registry_serves_a_pushed_image_to_another_engine(lab):
    ref = f"{lab.registry.address}/lab/busybox"
    src = lab.engines[0].client()
    src.images.get("busybox:latest").tag(ref, "v1")
    for line in src.images.push(ref, tag="v1", stream=True, decode=True):
        assert "error" not in line, line
    dst = lab.engines[2].client()
    pulled = dst.images.pull(ref, tag="v1")
    assert pulled.id == src.images.get("busybox:latest").id
    assert dst.containers.run(f"{ref}:v1", ["echo", "pulled"], remove=True) == b"pulled\n"
    dst.images.remove(f"{ref}:v1")
    src.images.remove(f"{ref}:v1")


def test_etcd_answers_puts_gets_and_leases(lab):
    async def scenario():
        host, port = lab.etcd.endpoint.split(":")
        async with aetcd.Client(host=host, port=int(port)) as client:
            lease = await client.lease(ttl=5)
            await client.put(b"/lab-test/key", b"value", lease=lease)
            got = await client.get(b"/lab-test/key")
            assert got.value == b"value"
            await lease.revoke()
            assert await client.get(b"/lab-test/key") is None
    asyncio.run(scenario())


def test_slots_never_share_bridges_whatever_their_prefix(lab):
    from swarmd.localcluster import slots
    other = slots.acquire("another-prefix")
    try:
        assert other.index != lab.slot.index
        assert other.bridge_name(0) != lab.engines[0].bridge
    finally:
        other.release()
