from swarmd.manager.container_records import ContainerRecord
from swarmd.manager.scheduler.snapshot import PortBinding

DOC = {
    "Id": "a" * 64,
    "Name": "/web",
    "Created": "2026-11-25T12:00:00.5Z",
    "Path": "sh",
    "Args": ["-c", "echo hi && sleep 5"],
    "Image": "sha256:" + "b" * 64,
    "State": {"Status": "running", "Running": True, "StartedAt": "2026-11-25T12:00:01Z"},
    "Config": {"Image": "busybox", "Labels": {"tier": "front"}, "Tty": False},
    "HostConfig": {"NetworkMode": "default", "Memory": 64 << 20, "NanoCpus": 500_000_000,
                   "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}], "53/udp": [{"HostPort": ""}]}},
    "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "443/tcp": None},
                        "Networks": {"bridge": {}}},
    "Mounts": [],
}


def test_summary_names_node_and_rewrites_wildcard_port_address():
    rec = ContainerRecord(node_id="n1", node_name="node1", doc=DOC, host_ip="127.0.100.1")
    s = rec.summary()
    assert s["Names"] == ["/node1/web"]
    assert s["Command"] == "sh -c 'echo hi && sleep 5'"
    assert s["Image"] == "busybox" and s["ImageID"] == DOC["Image"]
    assert {"IP": "127.0.100.1", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"} in s["Ports"]
    assert {"PrivatePort": 443, "Type": "tcp"} in s["Ports"]
    assert s["State"] == "running" and s["Status"].startswith("Up ")
    assert s["Created"] == 1795608000


def test_snapshot_carries_reservations_and_requested_ports():
    snap = ContainerRecord(node_id="n1", node_name="node1", doc=DOC).snapshot()
    assert snap.memory == 64 << 20
    assert snap.cpus == 0.5
    assert snap.ports == (PortBinding("0.0.0.0", 8080, "tcp"),)
    assert snap.name == "web" and snap.labels == {"tier": "front"}
