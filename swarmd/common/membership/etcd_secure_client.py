"""An etcd client over TLS.

aetcd's `Client.connect()` always opens a plain channel; `SecureClient` opens the same stubs,
authentication and watcher over `grpc.aio.secure_channel` with the credentials of an
swarmd.common.etcd_tls.EtcdTLS.
"""
from __future__ import annotations

import asyncio

import aetcd
from aetcd import rpc, watcher
from aetcd.client import _handle_errors

from swarmd.common.etcd_tls import EtcdTLS


class SecureClient(aetcd.Client):
    """An aetcd client over a TLS channel (`credentials`: grpc.ChannelCredentials)."""

    def __init__(self, *args, credentials, **kwargs):
        super().__init__(*args, **kwargs)
        self._credentials = credentials

    @_handle_errors
    async def connect(self) -> None:
        """Establish a connection to an etcd (aetcd's own connect(), over a secure channel)."""
        if self._connected.is_set():
            return

        if self._is_connecting:
            # another task is establishing the connection: wait for it
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return

        try:
            self._is_connecting = True
            target = f'{self._host}:{self._port}'
            self.channel = rpc.secure_channel(target, self._credentials, options=self._options.items())

            cred_params = [c is not None for c in (self._username, self._password)]
            if all(cred_params):
                self.auth_stub = rpc.AuthStub(self.channel)
                auth_request = rpc.AuthenticateRequest(name=self._username, password=self._password)
                resp = await self.auth_stub.Authenticate(auth_request, timeout=self._timeout)
                self.metadata = (('token', resp.token),)

            self.kvstub = rpc.KVStub(self.channel)
            self.clusterstub = rpc.ClusterStub(self.channel)
            self.leasestub = rpc.LeaseStub(self.channel)
            self.maintenancestub = rpc.MaintenanceStub(self.channel)

            self._watcher = watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout,
                                            metadata=self.metadata)

            self._connected.set()
        finally:
            self._is_connecting = False


def open_client(host: str, port: int, tls: EtcdTLS | None, **kwargs) -> aetcd.Client:
    """A plain aetcd client without `tls`, a SecureClient with it."""
    if tls is None:
        return aetcd.Client(host=host, port=port, **kwargs)
    return SecureClient(host=host, port=port, credentials=tls.channel_credentials(), **kwargs)
