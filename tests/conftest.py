"""Shared fixtures. The lab is real: etcd, three dockerd engines and a registry, per test session."""
from __future__ import annotations

import os

import pytest

from swarmd.localcluster.lab import Lab


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def lab():
    if os.geteuid() != 0:
        pytest.fail("the lab runs real dockerd engines and needs root")
    with Lab(engines=3) as running:
        yield running
