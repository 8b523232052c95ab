"""The lease keeper over an etcd client that is closed or not connected: the error says etcd is
unreachable (a ConnectionError, which the store maps to "etcd unavailable"), never an
AttributeError that agents would see as an unknown failure."""
from __future__ import annotations

import asyncio

import aetcd
import pytest

from swarmd.common.membership.lease_keeper import LeaseKeeper


def test_a_renewal_through_a_client_not_connected_fails_as_etcd_unreachable():
    async def renew():
        keeper = LeaseKeeper(aetcd.Client(host="127.0.0.1", port=1))    # never connected: no stubs
        try:
            return await asyncio.wait_for(keeper.refresh(7), 5)
        finally:
            keeper.close()

    with pytest.raises(ConnectionError, match="etcd client is closed"):
        asyncio.run(renew())
