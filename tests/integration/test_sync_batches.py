"""A node's sync reads the node in one call (SyncNode: engine facts, every container's inspect
document, images), or from an older agent in four (GetEngineInfo, ListContainers, InspectContainers
in batches, the images): on a real lab engine through the agent's gRPC service, both ways into a
real cluster view, and end to end: a manager started after the containers were made shows them as
the manager that watched them being made does, to both docker CLIs."""
from __future__ import annotations

import asyncio
import json
import uuid

import grpc
import pytest

from swarmd.agent.sdk_engine import SdkEngine
from swarmd.agent.service import AgentService
from swarmd.manager.agents import AgentClient, synced_documents
from swarmd.manager.cluster import ClusterView
from swarmd.manager.httpd.errors import ApiError
from swarmd.proto.swarm.v1 import agent_pb2_grpc, types_pb2
from swarmd.localcluster.processes import Daemon, free_port, wait_until
from swarmd.localcluster.swarm import swarm_argv

from tests.integration.conftest import DockerCLI, docker_cli_binary, serve_agent

pytestmark = pytest.mark.timeout(120)


class OlderAgentService(AgentService):
    """An agent from before InspectContainers and SyncNode: the generated servicer's answer,
    UNIMPLEMENTED."""

    InspectContainers = agent_pb2_grpc.AgentServicer.InspectContainers
    SyncNode = agent_pb2_grpc.AgentServicer.SyncNode


async def serve(lab, service_class) -> tuple[grpc.aio.Server, AgentClient]:
    engine = lab.engines[0]
    server, addr = await serve_agent(service_class, SdkEngine(engine.url), "syncbatch0001", host_ip=engine.host_ip)
    return server, AgentClient(addr, "node1")


@pytest.fixture(params=["current", "older"])
async def agent(request, lab):
    """An AgentClient to the agent service (current, or one without InspectContainers) on lab.engines[0]."""
    server, client = await serve(lab, AgentService if request.param == "current" else OlderAgentService)
    try:
        yield client
    finally:
        await client.close()
        await server.stop(0)


@pytest.fixture
def made(lab):
    """Three containers made on lab.engines[0] (and one made and removed): their IDs."""
    docker = lab.engines[0].client()
    stem = f"sync-batch-{uuid.uuid4().hex[:8]}"
    ids = [docker.api.create_container("busybox", ["sleep", "60"], name=f"{stem}-{i}",
                                       labels={"batch": stem})["Id"] for i in range(4)]
    docker.api.remove_container(ids[1])
    yield ids
    for cid in ids:
        try:
            docker.api.remove_container(cid, force=True)
        except Exception:          # removed by the test itself, or already: nothing to clean
            pass
    docker.close()


async def test_documents_come_in_the_order_asked_without_the_removed_one(agent, made, lab):
    docs, read_at = await agent.inspect_containers(made)
    assert [json.loads(d)["Id"] for d in docs] == [made[0], made[2], made[3]]
    engine_doc = lab.engines[0].client().api.inspect_container(made[2])
    assert json.loads(docs[1])["Name"] == engine_doc["Name"]
    assert json.loads(docs[1])["Config"]["Labels"] == engine_doc["Config"]["Labels"]
    assert read_at > 0                  # the lab's engines share the agent's clock


async def test_one_by_one_and_in_a_batch_read_the_same_documents(agent, made):
    docs, _ = await agent.inspect_containers(made)
    singles = [(await agent.inspect_container_at(cid))[0].raw for cid in (made[0], made[2], made[3])]
    assert [json.loads(d) for d in docs] == [json.loads(d) for d in singles]


async def test_an_empty_batch_and_a_batch_of_removed_containers_answer_nothing(agent, made):
    assert (await agent.inspect_containers([]))[0] == []
    assert (await agent.inspect_containers([made[1], "0" * 64]))[0] == []


async def test_one_sync_call_answers_what_the_four_calls_do(lab, made):
    server, client = await serve(lab, AgentService)
    try:
        synced = await client.sync_node()
        info = await client.engine_info()
        ids = [c["Id"] for c in await client.list_containers(all=True)]
        docs, _ = await client.inspect_containers(ids)
        images = await client.engine_call("GET", "/images/json")
    finally:
        await client.close()
        await server.stop(0)
    assert json.loads(synced.engine.info_json)["ID"] == json.loads(info.info_json)["ID"]
    assert synced.engine.node.id == info.node.id == "syncbatch0001"
    # asked with the manager's dictionary, the agent sends them packed
    assert synced.packed_containers and not synced.containers
    synced_docs = [dict(d) for d in synced_documents(synced)]
    assert [d["Id"] for d in synced_docs] == [json.loads(d)["Id"] for d in docs] == ids
    assert made[0] in ids and made[1] not in ids
    assert synced_docs == [json.loads(d) for d in docs]
    by_id = lambda body: sorted(json.loads(body), key=lambda i: i["Id"])      # the engine's order varies
    assert by_id(synced.images_json) == by_id(images.body)
    assert any("busybox:latest" in (i["RepoTags"] or []) for i in json.loads(synced.images_json))
    assert synced.read_at_ns > 0        # the lab's engines share the agent's clock


async def test_an_older_agent_is_asked_with_the_four_calls(lab):
    server, client = await serve(lab, OlderAgentService)
    try:
        assert await client.sync_node() is None
        assert client.node_sync is False       # not asked again
        assert await client.sync_node() is None
    finally:
        await client.close()
        await server.stop(0)


async def test_a_node_too_large_for_one_message_is_read_in_batches(lab, made):
    """An answer over the message limit (here a small one) comes back RESOURCE_EXHAUSTED: the
    manager reads that node with the four calls, its documents in batches, and keeps asking
    SyncNode of it next time."""
    from swarmd.agent.node_info import NodeInfoSource, NodeSettings
    engine = SdkEngine(lab.engines[0].url)
    addr = f"127.0.0.1:{free_port()}"
    server = grpc.aio.server(options=[("grpc.max_send_message_length", 4096)])
    settings = NodeSettings(node_id="syncbatch0001", addr=addr, host_ip=lab.engines[0].host_ip)
    agent_pb2_grpc.add_AgentServicer_to_server(AgentService(engine, NodeInfoSource(engine, settings)), server)
    server.add_insecure_port(addr)
    await server.start()
    client = AgentClient(addr, "node1")
    try:
        assert await client.sync_node() is None
        assert client.node_sync is True
        docs, _ = await client.inspect_containers([made[0]])      # one document fits in a message
        assert json.loads(docs[0])["Id"] == made[0]
    finally:
        await client.close()
        await server.stop(0)


async def test_a_view_syncs_a_node_alike_in_one_call_or_in_four(lab, made):
    """The cluster view's records, names and images of the node, read from a current agent and
    from an older one."""
    engine = lab.engines[0]
    seen = []
    for service in (AgentService, OlderAgentService):
        server, addr = await serve_agent(service, SdkEngine(engine.url), "syncbatch0001", host_ip=engine.host_ip)
        cluster = ClusterView(client_factory=lambda node: AgentClient(node.info.addr, node.info.name))
        try:
            node = types_pb2.Node(info=types_pb2.NodeInfo(id="syncbatch0001", name="node1", addr=addr,
                                                          host_ip=engine.host_ip),
                                  state=types_pb2.NODE_STATE_HEALTHY)
            cluster.node_joined(node)
            view = cluster.nodes["syncbatch0001"]
            wait_started = asyncio.get_running_loop().time()
            while not (view.listed and view.images):
                assert asyncio.get_running_loop().time() - wait_started < 30, "the node was not synced"
                await asyncio.sleep(0.02)
            seen.append(({cid: (rec.name, rec.state.get("Status"), rec.doc["Config"]["Labels"])
                          for cid, rec in view.containers.items()},
                         sorted(i["Id"] for i in view.images), view.info.get("ID")))
        finally:
            await cluster.close()
            await server.stop(0)
    assert seen[0] == seen[1]
    records = seen[0][0]
    assert made[0] in records and made[1] not in records and records[made[2]][0].startswith("sync-batch-")
    assert seen[0][1] and seen[0][2]


async def test_an_agent_that_cannot_be_reached_is_an_error_not_an_empty_node(lab):
    client = AgentClient(f"127.0.0.1:{free_port()}", "gone")
    try:
        with pytest.raises(ApiError) as err:
            await client.inspect_containers(["a" * 64])
        assert err.value.status == 503 and "unreachable" in err.value.message
    finally:
        await client.close()


# -- end to end: a manager that syncs after the containers exist ----------------------------------


@pytest.fixture(scope="module")
def late_manager(swarm, lab, tmp_path_factory):
    """Containers made on every lab engine, then a second manager on the session's cluster, which
    reads them in its nodes' first sync: (its DOCKER_HOST, the containers' names)."""
    stem = f"late-sync-{uuid.uuid4().hex[:6]}"
    names = []
    for i, engine in enumerate(lab.engines):
        docker = engine.client()
        for j in range(3):
            name = f"{stem}-{i}-{j}"
            docker.api.create_container("busybox", ["sleep", "3600"], name=name,
                                        labels={"late": stem, "index": str(j)})
            if j != 1:
                docker.api.start(name)
            names.append(name)
        docker.close()
    root = tmp_path_factory.mktemp("late-manager")
    addr = f"127.0.0.1:{free_port()}"
    manager = Daemon("late-manager", swarm_argv("manage", "-H", f"tcp://{addr}", "--discovery-addr",
                                                swarm.discovery_addr, swarm.discovery_url),
                     root / "manager.log").start()
    try:
        def synced():
            if not manager.running():
                raise AssertionError(f"manager exited:\n{manager.log_tail()}")
            cli = DockerCLI(f"tcp://{addr}", str(root), docker_cli_binary("28"))
            out = cli.run("ps", "-a", "--filter", f"label=late={stem}", "--format", "{{.Names}}", check=False)
            return out.returncode == 0 and len(out.stdout.split()) == len(names)
        wait_until(synced, 60, "the late manager to list every container", interval=0.2)
        yield f"tcp://{addr}", stem, names
    finally:
        manager.stop()
        for engine in lab.engines:
            docker = engine.client()
            for name in names:
                try:
                    docker.api.remove_container(name, force=True)
                except Exception:      # not on this engine
                    pass
            docker.close()


def _late(any_cli: DockerCLI, host: str) -> DockerCLI:
    return DockerCLI(host, any_cli.env["DOCKER_CONFIG"], any_cli.binary)


# labels one by one: the 20.10 CLI prints {{.Labels}} in Go's random map order
PS_FORMAT = ('{{.ID}}|{{.Names}}|{{.Image}}|{{.Command}}|{{.State}}|{{.Label "late"}}|{{.Label "index"}}|{{.Ports}}|'
             '{{.Mounts}}|{{.Networks}}|{{.CreatedAt}}')


def test_a_late_manager_lists_what_the_watching_manager_lists(late_manager, any_cli):
    host, stem, names = late_manager
    args = ("ps", "-a", "--no-trunc", "--filter", f"label=late={stem}", "--format", PS_FORMAT)
    late = sorted(_late(any_cli, host).out(*args).splitlines())
    watching = sorted(any_cli.out(*args).splitlines())
    assert late == watching
    assert len(late) == len(names)
    assert sum("|running|" in line for line in late) == 2 * len(names) // 3


def test_a_late_manager_inspects_as_the_watching_manager_does(late_manager, any_cli):
    host, stem, names = late_manager
    late = json.loads(_late(any_cli, host).out("inspect", *names))
    watching = json.loads(any_cli.out("inspect", *names))
    assert late == watching
    assert {d["Config"]["Labels"]["late"] for d in late} == {stem}
    assert all(d["Node"]["Name"] for d in late)
