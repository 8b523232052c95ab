import pytest

from swarmd.manager.event_filters import matches, validate
from swarmd.manager.httpd.errors import ApiError

START = {
    "Type": "container", "Action": "start", "status": "start", "id": "c" * 64,
    "Actor": {"ID": "c" * 64, "Attributes": {"name": "web", "image": "busybox", "tier": "front"}},
    "node": {"Name": "node2", "Id": "N2"}, "scope": "local", "time": 1, "timeNano": 1,
}
PULL = {"Type": "image", "Action": "pull", "Actor": {"ID": "busybox:latest", "Attributes": {"name": "busybox"}},
        "node": {"Name": "node1", "Id": "N1"}}


@pytest.mark.parametrize("filters,expected", [
    ({}, True),
    ({"type": ["container"]}, True),
    ({"type": ["image"]}, False),
    ({"event": ["start", "die"]}, True),
    ({"event": ["die"]}, False),
    ({"container": ["web"]}, True),
    ({"container": ["cccc"]}, True),
    ({"container": ["other"]}, False),
    ({"image": ["busybox"]}, True),
    ({"label": ["tier=front"]}, True),
    ({"label": ["tier"]}, True),
    ({"label": ["tier=back"]}, False),
    ({"node": ["node2"]}, True),
    ({"node": ["node1"]}, False),
    ({"type": ["container"], "node": ["node2"], "event": ["start"]}, True),
    ({"service": ["x"]}, False),
])
def test_container_event_filters(filters, expected):
    assert matches(START, filters) is expected


def test_image_events_filter_by_image_name():
    assert matches(PULL, {"image": ["busybox"]})
    assert not matches(PULL, {"container": ["busybox"]})


def test_unknown_filter_is_a_400():
    with pytest.raises(ApiError) as err:
        validate({"bogus": ["x"]})
    assert err.value.status == 400
    validate({"type": ["container"], "node": ["n"]})
