import pytest

from swarmd.manager import container_filters
from swarmd.manager.container_records import ContainerRecord
from swarmd.manager.httpd.errors import ApiError


def record(name: str, created: str, **doc) -> ContainerRecord:
    base = {
        "Id": (name.encode().hex() * 64)[:64], "Name": f"/{name}", "Created": created, "Path": "sh", "Args": [],
        "Image": "sha256:" + "b" * 64, "State": {"Status": "running", "Running": True, "ExitCode": 0},
        "Config": {"Image": "busybox", "Labels": {"tier": "front"}, "ExposedPorts": {"80/tcp": {}, "53/udp": {}}},
        "HostConfig": {"NetworkMode": "default"},
        "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]},
                            "Networks": {"backend": {"NetworkID": "abcdef123456"}}},
        "Mounts": [{"Type": "volume", "Name": "data", "Source": "/var/lib/docker/volumes/data/_data",
                    "Destination": "/data"}],
    }
    base.update(doc)
    return ContainerRecord(node_id="n1", node_name="node1", doc=base, host_ip="127.0.100.1")


OLD = record("old", "2026-11-25T10:00:00Z")
NEW = record("new", "2026-11-25T12:00:00Z", Mounts=[], NetworkSettings={"Ports": {}, "Networks": {"bridge": {}}})
BY_NAME = {"old": OLD, "new": NEW}


def match(rec, **filters):
    container_filters.validate(filters)
    return container_filters.matches(rec, rec.summary(), filters, lambda ref: BY_NAME[ref])


def test_before_and_since_compare_creation_times():
    assert match(OLD, before=["new"]) and not match(NEW, before=["new"])
    assert match(NEW, since=["old"]) and not match(OLD, since=["old"])


def test_volume_network_publish_expose():
    assert match(OLD, volume=["data"]) and match(OLD, volume=["/data"]) and not match(NEW, volume=["data"])
    assert match(OLD, network=["backend"]) and match(OLD, network=["abcdef"]) and not match(NEW, network=["backend"])
    assert match(OLD, publish=["8080"]) and match(OLD, publish=["8000-8100/tcp"])
    assert not match(OLD, publish=["8080/udp"]) and not match(NEW, publish=["8080"])
    assert match(OLD, expose=["53/udp"]) and match(OLD, expose=["80"]) and not match(OLD, expose=["443"])


def test_node_glob_label_and_name():
    assert match(OLD, node=["node*"]) and not match(OLD, node=["node2"])
    assert match(OLD, label=["tier=front"]) and match(OLD, label=["tier"]) and not match(OLD, label=["tier=back"])
    assert match(OLD, name=["^old$"]) and match(OLD, name=["node1/old"]) and not match(OLD, name=["new"])


@pytest.mark.parametrize("filters", [{"bogus": ["x"]}, {"status": ["sleeping"]}, {"name": ["("]},
                                     {"exited": ["zero"]}])
def test_bad_filters_are_400(filters):
    with pytest.raises(ApiError) as err:
        container_filters.validate(filters)
    assert err.value.status == 400


def test_bad_port_filter_is_400():
    with pytest.raises(ApiError):
        match(OLD, publish=["eighty"])


def test_network_by_node_and_name_as_network_ls_lists_it():
    assert match(OLD, network=["node1/backend"]) and not match(OLD, network=["node2/backend"])
    assert not match(OLD, network=["node1/back"]) and not match(NEW, network=["node1/backend"])
