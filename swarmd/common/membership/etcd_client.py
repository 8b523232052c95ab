"""The `etcd://HOST:PORT/PREFIX` scheme: membership straight in etcd, no discovery daemon."""
from __future__ import annotations

from typing import AsyncIterator

from swarmd.proto.swarm.v1 import types_pb2
from swarmd.common import logs
from swarmd.common.membership import Membership, MemberEvent, MembershipError, MembershipUnavailable
from swarmd.common.membership.etcd_store import (EtcdStore, IdTaken, LeaseGone, NameTaken, NodeRemoved, NodeSet,
                                         StoreUnavailable, invalid_node_info)
from swarmd.common.membership.registrar import LeaseRegistrar, RegistrationLost
from swarmd.common.membership.watch import converging_watch

log = logs.get("membership.etcd")


class _EtcdScheme:
    def __init__(self, endpoints, prefix: str, etcd_tls=None):
        self.store = EtcdStore(list(endpoints), tls=etcd_tls)
        self.nodes = NodeSet(self.store, prefix)
        self.where = "etcd://" + ",".join(f"{h}:{p}" for h, p in endpoints) + prefix

    async def close(self) -> None:
        await self.store.close()


class EtcdMembership(_EtcdScheme, Membership):
    async def list_nodes(self) -> list[types_pb2.Node]:
        try:
            return await self.nodes.list()
        except StoreUnavailable as exc:
            raise MembershipUnavailable(str(exc)) from None

    def watch(self) -> AsyncIterator[MemberEvent]:
        return converging_watch(self.nodes.session, self.where, log)


class EtcdRegistrar(_EtcdScheme, LeaseRegistrar):
    source = "etcd"

    def __init__(self, endpoints, prefix: str, etcd_tls=None):
        _EtcdScheme.__init__(self, endpoints, prefix, etcd_tls)
        LeaseRegistrar.__init__(self)
        self.lease_id = 0

    async def _register(self, info: types_pb2.NodeInfo, ttl: float) -> float | None:
        problem = invalid_node_info(info)
        if problem:
            raise MembershipError(problem)
        try:
            self.lease_id, _ = await self.nodes.register(info, ttl)
        except (NameTaken, IdTaken, NodeRemoved) as exc:
            raise MembershipError(str(exc)) from None
        except StoreUnavailable as exc:
            raise MembershipUnavailable(str(exc)) from None
        return None

    async def _heartbeat(self) -> float | None:
        try:
            await self.nodes.heartbeat(self.node_id or "", self.lease_id)
        except LeaseGone as exc:
            raise RegistrationLost(str(exc)) from None
        except StoreUnavailable as exc:
            raise MembershipUnavailable(str(exc)) from None
        return None

    async def _deregister(self, node_id: str) -> None:
        await self.nodes.deregister(node_id)

