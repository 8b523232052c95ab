"""The agent's gRPC service on a real lab engine, driven through the manager's AgentClient."""
from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from swarmd.agent import identity
from swarmd.agent.engine import EngineError
from swarmd.agent.node_info import parse_labels
from swarmd.agent.sdk_engine import SdkEngine
from swarmd.agent.service import AgentService
from swarmd.manager.agents import AgentClient
from swarmd.manager.httpd.errors import ApiError
from swarmd.proto.swarm.v1 import agent_pb2, agent_pb2_grpc
from swarmd.localcluster.processes import Daemon, free_port, wait_until
from swarmd.localcluster.swarm import swarm_argv
from tests.integration.conftest import serve_agent

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def agent(lab):
    """AgentService for lab.engines[0] on a real grpc.aio server, and an AgentClient to it."""
    engine = lab.engines[0]
    server, addr = await serve_agent(AgentService, SdkEngine(engine.url), "testnode0001",   # what `swarm join` runs
                                     host_ip=engine.host_ip, labels={"role": "test"})
    client = AgentClient(addr, "node1")
    try:
        yield client
    finally:
        await client.close()
        await server.stop(0)


@pytest.fixture
def names(lab):
    """Unique container names; whatever the test left behind is removed afterwards."""
    made: list[str] = []

    def make(stem: str) -> str:
        made.append(f"agent-test-{stem}-{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield make
    docker = lab.engines[0].client()
    try:
        for name in made:
            try:
                docker.api.remove_container(name, force=True, v=True)
            except Exception:
                pass
    finally:
        docker.close()


def demux(raw: bytes) -> tuple[bytes, bytes]:
    """Splits the engine's multiplexed stream (8-byte frame headers) into stdout and stderr."""
    out, err = b"", b""
    while raw:
        assert len(raw) >= 8, f"truncated frame header {raw!r}"
        kind, size = raw[0], struct.unpack(">I", raw[4:8])[0]
        payload, raw = raw[8:8 + size], raw[8 + size:]
        assert len(payload) == size, "truncated frame"
        if kind == 2:
            err += payload
        else:
            out += payload
    return out, err


def open_frame(method: str, path: str, query: str = "", body: bytes = b"",
               hijack: bool = False) -> agent_pb2.StreamFrame:
    headers = [agent_pb2.Header(name="Content-Type", value="application/json")] if body else []
    if hijack:
        headers += [agent_pb2.Header(name="Connection", value="Upgrade"),
                    agent_pb2.Header(name="Upgrade", value="tcp")]
    return agent_pb2.StreamFrame(open=agent_pb2.EngineRequest(method=method, path=path, query=query,
                                                              body=body, headers=headers))


async def read_until_end(call) -> tuple[bytes, str]:
    """Collects data frames until the agent's `end` frame; returns the bytes and the end error."""
    data = b""
    while (frame := await call.read()) is not grpc.aio.EOF:
        kind = frame.WhichOneof("frame")
        if kind == "data":
            data += frame.data
        elif kind == "end":
            return data, frame.end.error
    raise AssertionError("the stream ended without an end frame")


async def read_head(call) -> agent_pb2.StreamHead:
    frame = await call.read()
    assert frame is not grpc.aio.EOF and frame.WhichOneof("frame") == "head", frame
    return frame.head


async def run_container(client: AgentClient, name: str, cmd: list[str], **config) -> str:
    created = await client.create_container(name, {"Image": "busybox", "Cmd": cmd, **config})
    assert await client.container_action(created["Id"], "start") == 204
    return created["Id"]


# -- unary calls ----------------------------------------------------------------------------------


async def test_engine_info_reports_the_node_and_the_engine(agent, lab):
    engine = lab.engines[0]
    info = await agent.engine_info()
    engine_doc = json.loads(info.info_json)
    version_doc = json.loads(info.version_json)
    docker = engine.client()
    try:
        assert engine_doc["ID"] == docker.info()["ID"]
    finally:
        docker.close()
    node = info.node
    assert node.id == "testnode0001"
    assert node.name == engine_doc["Name"]
    assert node.addr == agent.addr
    assert node.host_ip == engine.host_ip
    assert dict(node.labels) == {"lab.index": "1", "role": "test"}
    assert node.engine_id == engine_doc["ID"]
    assert node.engine_version == version_doc["Version"]
    assert node.api_version == version_doc["ApiVersion"] == "1.41"
    assert node.cpus == engine_doc["NCPU"] > 0
    assert node.memory_bytes == engine_doc["MemTotal"] > 0
    assert node.os == "linux"
    assert node.kernel_version and node.architecture and node.operating_system


async def test_container_lifecycle_with_engine_statuses(agent, names):
    name = names("life")
    created = await agent.create_container(name, {"Image": "busybox", "Cmd": ["sleep", "300"]})
    cid = created["Id"]
    assert len(cid) == 64

    with pytest.raises(ApiError) as conflict:
        await agent.create_container(name, {"Image": "busybox", "Cmd": ["true"]})
    assert conflict.value.status == 409
    assert f'The container name "/{name}" is already in use' in conflict.value.message

    assert await agent.container_action(cid, "start") == 204
    assert await agent.container_action(cid, "start") == 304
    doc = await agent.inspect_container(cid)
    assert doc["Name"] == f"/{name}" and doc["State"]["Running"] is True

    running = await agent.list_containers(all=False, filters={"name": [name]})
    assert [c["Id"] for c in running] == [cid]
    by_map = await agent.list_containers(all=True, filters={"name": {name: True}})
    assert [c["Id"] for c in by_map] == [cid]

    assert await agent.container_action(cid, "pause") == 204
    assert (await agent.inspect_container(cid))["State"]["Paused"] is True
    assert await agent.container_action(cid, "unpause") == 204

    with pytest.raises(ApiError) as still_running:
        await agent.container_action(cid, "remove")
    assert still_running.value.status == 409
    assert "cannot remove a running container" in still_running.value.message.lower()

    assert await agent.container_action(cid, "stop", {"t": "1"}) == 204
    assert await agent.container_action(cid, "stop", {"t": "1"}) == 304
    assert await agent.list_containers(all=False, filters={"name": [name]}) == []
    assert [c["Id"] for c in await agent.list_containers(all=True, filters={"name": [name]})] == [cid]

    assert await agent.container_action(cid, "remove", {"v": "1"}) == 204
    with pytest.raises(ApiError) as gone:
        await agent.inspect_container(cid)
    assert gone.value.status == 404
    assert gone.value.message == f"No such container: {cid}"
    with pytest.raises(ApiError) as gone_action:
        await agent.container_action("no-such-container-xyz", "kill", {"signal": "KILL"})
    assert gone_action.value.status == 404
    assert gone_action.value.message == (   # the engine's own wording
        "Cannot kill container: no-such-container-xyz: No such container: no-such-container-xyz")


async def test_create_pulls_a_missing_image_from_its_registry(agent, lab, names):
    docker = lab.engines[0].client()
    ref = f"{lab.registry.address}/agent-test/busybox:{uuid.uuid4().hex[:8]}"
    try:
        docker.images.get("busybox:latest").tag(ref)
        for line in docker.images.push(ref, stream=True, decode=True):
            assert "error" not in line, line
        docker.images.remove(ref)
        with pytest.raises(Exception):
            docker.images.get(ref)

        created = await agent.create_container(names("pulled"), {"Image": ref, "Cmd": ["true"]})
        doc = await agent.inspect_container(created["Id"])
        assert doc["Config"]["Image"] == ref
        assert docker.images.get(ref).id == docker.images.get("busybox:latest").id
    finally:
        try:
            for c in docker.containers.list(all=True, filters={"ancestor": ref}):
                c.remove(force=True)
            docker.images.remove(ref)
        except Exception:
            pass
        docker.close()


async def test_create_with_an_unknown_local_image_id_is_not_pulled(agent, names):
    with pytest.raises(ApiError) as missing:
        await agent.create_container(names("noimage"), {"Image": "sha256:" + "0" * 64})
    assert missing.value.status == 404
    assert missing.value.message.startswith("No such image")


async def test_engine_call_relays_status_headers_and_body(agent, names):
    cid = await run_container(agent, names("top"), ["sleep", "300"])
    resp = await agent.engine_call("GET", f"/containers/{cid}/top", "ps_args=")
    assert resp.status == 200
    top = json.loads(resp.body)
    assert any("sleep" in " ".join(p) for p in top["Processes"]), top
    assert any(h.name.lower() == "api-version" and h.value == "1.41" for h in resp.headers)

    missing = await agent.engine_call("GET", "/containers/not-there/json")
    assert missing.status == 404
    assert json.loads(missing.body) == {"message": "No such container: not-there"}

    renamed = names("renamed")
    resp = await agent.engine_call("POST", f"/containers/{cid}/rename", f"name={renamed}")
    assert resp.status == 204 and resp.body == b""
    assert (await agent.inspect_container(cid))["Name"] == f"/{renamed}"


# -- streams ----------------------------------------------------------------------------------------


async def test_stream_follows_logs_until_the_container_exits(agent, names):
    cid = await run_container(agent, names("logs"),
                              ["sh", "-c", "for i in 1 2 3; do echo line$i; echo err$i >&2; sleep 0.3; done"])
    call = agent.engine_stream()
    try:
        await call.write(open_frame("GET", f"/containers/{cid}/logs", "follow=1&stdout=1&stderr=1"))
        head = await read_head(call)
        assert head.status == 200
        raw, error = await read_until_end(call)
    finally:
        call.cancel()
    assert error == ""
    out, err = demux(raw)
    assert out == b"line1\nline2\nline3\n"
    assert err == b"err1\nerr2\nerr3\n"


async def test_stream_answers_engine_errors_with_their_status_and_body(agent):
    call = agent.engine_stream()
    try:
        await call.write(open_frame("GET", "/containers/missing-one/logs", "follow=1&stdout=1"))
        head = await read_head(call)
        body, _ = await read_until_end(call)
    finally:
        call.cancel()
    assert head.status == 404
    assert json.loads(body) == {"message": "No such container: missing-one"}


async def test_attach_hijack_relays_stdin_and_half_close(agent, names):
    created = await agent.create_container(names("cat"), {
        "Image": "busybox", "Cmd": ["cat"], "OpenStdin": True, "StdinOnce": True,
        "AttachStdin": True, "AttachStdout": True, "AttachStderr": True,
    })
    cid = created["Id"]
    call = agent.engine_stream()
    try:
        await call.write(open_frame("POST", f"/containers/{cid}/attach",
                                    "stream=1&stdin=1&stdout=1&stderr=1", hijack=True))
        head = await read_head(call)
        assert head.status == 101
        assert await agent.container_action(cid, "start") == 204
        await call.write(agent_pb2.StreamFrame(data=b"hello through the agent\n"))
        await call.write(agent_pb2.StreamFrame(data=b"second line\n"))
        await call.write(agent_pb2.StreamFrame(close_write=True))
        raw, error = await read_until_end(call)
    finally:
        call.cancel()
    assert error == ""
    out, _ = demux(raw)
    assert out == b"hello through the agent\nsecond line\n"
    wait = await agent.engine_call("POST", f"/containers/{cid}/wait")
    assert json.loads(wait.body)["StatusCode"] == 0   # cat saw the end of its stdin


async def test_exec_with_a_tty_through_a_hijacked_stream(agent, names):
    cid = await run_container(agent, names("exec"), ["sleep", "300"])
    resp = await agent.engine_call("POST", f"/containers/{cid}/exec", body=json.dumps({
        "AttachStdin": True, "AttachStdout": True, "AttachStderr": True, "Tty": True, "Cmd": ["sh"],
    }).encode(), headers={"Content-Type": "application/json"})
    assert resp.status == 201, resp.body
    exec_id = json.loads(resp.body)["Id"]
    call = agent.engine_stream()
    try:
        await call.write(open_frame("POST", f"/exec/{exec_id}/start",
                                    body=json.dumps({"Detach": False, "Tty": True}).encode(), hijack=True))
        head = await read_head(call)
        assert head.status == 101
        await call.write(agent_pb2.StreamFrame(data=b"echo exec-$((40+2))\n"))
        await call.write(agent_pb2.StreamFrame(data=b"exit 3\n"))
        raw, error = await read_until_end(call)
    finally:
        call.cancel()
    assert error == ""
    assert b"exec-42" in raw     # raw tty bytes: no multiplexing headers
    inspected = await agent.engine_call("GET", f"/exec/{exec_id}/json")
    assert json.loads(inspected.body)["ExitCode"] == 3


def _open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


async def test_cancelling_a_stream_closes_the_engine_connection(agent, names):
    cid = await run_container(agent, names("cancel"), ["sh", "-c", "while true; do echo tick; sleep 0.1; done"])
    assert (await agent.engine_info()).node.id == "testnode0001"   # the channel is connected
    baseline = _open_sockets()
    call = agent.engine_stream()
    await call.write(open_frame("GET", f"/containers/{cid}/logs", "follow=1&stdout=1"))
    assert (await read_head(call)).status == 200
    first = await call.read()
    assert first.WhichOneof("frame") == "data"
    assert _open_sockets() == baseline + 1     # the agent's connection to the engine
    call.cancel()
    for _ in range(200):
        if _open_sockets() == baseline:
            break
        await asyncio.sleep(0.05)
    assert _open_sockets() == baseline, "the engine connection outlived the cancelled call"
    assert (await agent.engine_info()).node.id == "testnode0001"


async def test_events_deliver_create_start_and_die(agent, names):
    since = time.time_ns()
    cid = await run_container(agent, names("events"), ["true"])
    seen: list[str] = []
    events = agent.events(since_unix_nano=since)

    async def collect():
        async for ev in events:
            if ev.get("Type") == "container" and ev.get("Actor", {}).get("ID") == cid:
                seen.append(ev["Action"])
                if ev["Action"] == "die":
                    return ev

    try:
        die = await asyncio.wait_for(collect(), 30)
    finally:
        await events.aclose()
    assert seen[:2] == ["create", "start"]
    assert die["Actor"]["Attributes"]["exitCode"] == "0"


async def test_events_from_the_past_and_from_now(agent, names):
    cid = await run_container(agent, names("past"), ["true"])
    await asyncio.sleep(0)  # the events above are already in the engine's log
    stub = agent_pb2_grpc.AgentStub(agent.channel)
    call = stub.Events(agent_pb2.EventsRequest(since_unix_nano=time.time_ns() - 60 * 10**9))
    try:
        async def first_create():
            async for ev in call:
                doc = json.loads(ev.json)
                if doc.get("Action") == "create" and doc["Actor"]["ID"] == cid:
                    return doc
        doc = await asyncio.wait_for(first_create(), 30)
    finally:
        call.cancel()
    assert doc["Type"] == "container" and doc["timeNano"] > 0


# -- the `swarm join` process -----------------------------------------------------------------------


def _health(addr: str) -> int:
    async def check():
        async with grpc.aio.insecure_channel(addr) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            resp = await stub.Check(health_pb2.HealthCheckRequest(service="swarm.v1.Agent"), timeout=2)
            return resp.status
    return asyncio.run(check())


def _join(tmp_path: Path, engine_url: str, discovery_url: str, *extra: str) -> tuple[Daemon, str]:
    addr = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "swarmd", "join", "--advertise", addr, "--engine", engine_url,
            "--heartbeat", "1s", "--ttl", "3s", "--engine-check", "500ms",
            "--state-dir", str(tmp_path / "state"), *extra, discovery_url]
    return Daemon("agent", argv, tmp_path / "agent.log", cwd=str(Path(__file__).parents[2])).start(), addr


def _etcd_nodes(url: str) -> dict:
    from swarmd.common.membership import open_membership

    async def listing():
        membership = open_membership(url)
        try:
            return {n.info.id: n for n in await membership.list_nodes()}
        finally:
            await membership.close()
    return asyncio.run(listing())


def test_join_process_serves_health_registers_and_stays_a_member_when_stopped(lab, tmp_path):
    engine = lab.engines[1]
    discovery_url = f"etcd://{lab.etcd.endpoint}/agent-test-{uuid.uuid4().hex[:8]}"
    daemon, addr = _join(tmp_path, engine.url, discovery_url, "--name", "joined-node", "--label", "zone=a",
                         "--host-ip", engine.host_ip)
    try:
        wait_until(lambda: _health(addr) == health_pb2.HealthCheckResponse.SERVING, 30,
                   f"agent health SERVING\n{daemon.log_tail()}")
        node_id = (tmp_path / "state" / "node-id").read_text().strip()
        node = wait_until(lambda: _etcd_nodes(discovery_url).get(node_id), 30, "the node in etcd")
        assert node.info.name == "joined-node"
        assert node.info.addr == addr
        assert node.info.host_ip == engine.host_ip
        assert node.info.labels["zone"] == "a" and node.info.labels["lab.index"] == "2"
    finally:
        code = daemon.stop(timeout=15)
    assert code == 0, daemon.log_tail()
    assert node_id in _etcd_nodes(discovery_url)       # a stop is not a departure: the lease lives on
    left = subprocess.run(swarm_argv("leave", "--state-dir", str(tmp_path / "state"), discovery_url),
                          capture_output=True, text=True, timeout=30)
    assert left.returncode == 0, left.stderr
    assert node_id not in _etcd_nodes(discovery_url)

    # a restart keeps the node id
    daemon, addr = _join(tmp_path, engine.url, discovery_url)
    try:
        wait_until(lambda: _etcd_nodes(discovery_url).get(node_id), 30, f"the node again\n{daemon.log_tail()}")
    finally:
        assert daemon.stop(timeout=15) == 0, daemon.log_tail()


def test_join_process_exits_1_when_its_registration_is_refused(lab, tmp_path):
    discovery_url = f"etcd://{lab.etcd.endpoint}/agent-test-{uuid.uuid4().hex[:8]}"
    first, addr = _join(tmp_path / "a", lab.engines[1].url, discovery_url, "--name", "same-name")
    try:
        wait_until(lambda: len(_etcd_nodes(discovery_url)) == 1, 30, f"the first node\n{first.log_tail()}")
        second, _ = _join(tmp_path / "b", lab.engines[2].url, discovery_url, "--name", "same-name")
        try:
            code = second.proc.wait(30)
        finally:
            second.stop()
        assert code == 1, second.log_tail()
        assert "registration refused" in second.log_tail() and "same-name" in second.log_tail()
        assert [n.info.addr for n in _etcd_nodes(discovery_url).values()] == [addr]
    finally:
        assert first.stop(timeout=15) == 0, first.log_tail()


def test_join_process_is_not_serving_without_its_engine(lab, tmp_path):
    discovery_url = f"etcd://{lab.etcd.endpoint}/agent-test-{uuid.uuid4().hex[:8]}"
    daemon, addr = _join(tmp_path, f"unix://{tmp_path}/no-engine.sock", discovery_url)
    try:
        status = wait_until(lambda: _health(addr), 30, f"agent health\n{daemon.log_tail()}")
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert daemon.running()
        assert _etcd_nodes(discovery_url) == {}
    finally:
        assert daemon.stop(timeout=15) == 0, daemon.log_tail()


# -- pure parts ---------------------------------------------------------------------------------------


def test_node_id_is_created_once_and_kept(tmp_path):
    first = identity.load_or_create(tmp_path / "state")
    assert first == identity.load_or_create(tmp_path / "state")
    assert (tmp_path / "state" / "node-id").read_text() == first + "\n"
    (tmp_path / "state" / "node-id").write_text("bad id!\n")
    with pytest.raises(identity.IdentityError, match="invalid node id"):
        identity.load_or_create(tmp_path / "state")


def test_label_flags_parse_and_reject_malformed_ones():
    assert parse_labels(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_labels(["novalue"])


async def test_agent_engine_reads_filters_in_both_shapes_and_reports_statuses(lab, names):
    eng = SdkEngine(lab.engines[0].url)
    try:
        name = names("filters")
        created = await eng.create_container(name, json.dumps({"Image": "busybox", "Cmd": ["sleep", "30"],
                                                               "Labels": {"probe": name}}).encode())
        for shape in ({"label": [f"probe={name}"]}, {"label": {f"probe={name}": True}}):
            listed = json.loads(await eng.list_containers(True, json.dumps(shape).encode()))
            assert [c["Id"] for c in listed] == [created["Id"]]
        assert await eng.container_action(created["Id"], "start", {}) == 204
        assert await eng.container_action(created["Id"], "start", {}) == 304
        assert await eng.container_action(created["Id"], "remove", {"force": "1"}) == 204
        with pytest.raises(EngineError) as err:
            await eng.inspect_container(created["Id"])
        assert err.value.status == 404 and err.value.message.startswith("No such container")
    finally:
        eng.close()
