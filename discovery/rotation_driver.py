"""The discovery daemon's side of a CA rotation: reads the CA directory again every second, moves
the rotation to its next phase once every certificate holder has caught up (discovery.rotation,
discovery.holders), and wakes the WatchCertificate streams when the phase changes, so that nodes
behind it are told to renew at once.
"""
from __future__ import annotations

import asyncio

from swarmd.common import logs, pki
from swarmd.common.membership.etcd_store import StoreUnavailable
from swarmd.common import ca_rotation as rotation
from swarmd.discovery.ca import Authority
from swarmd.discovery.holders import Holders

log = logs.get("discovery")

CHECK_EVERY = 1.0


class RotationDriver:
    def __init__(self, authority: Authority, holders: Holders):
        self.authority = authority
        self.holders = holders
        self.generation = 0
        self._changed: asyncio.Event | None = None      # made on the daemon's loop
        self._behind: tuple[str, int] | None = None

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    async def wait_change(self, timeout: float) -> None:
        """Returns when D changed, or after `timeout` seconds."""
        try:
            await asyncio.wait_for(self._event().wait(), timeout)
        except TimeoutError:
            pass

    def _notify(self) -> None:
        self.generation += 1
        event, self._changed = self._event(), asyncio.Event()
        event.set()                 # every stream waiting wakes; later waits take the new event

    async def run(self) -> None:
        """Runs until cancelled."""
        while True:
            await self.step()
            await asyncio.sleep(CHECK_EVERY)

    async def _refresh(self) -> None:
        authority = self.authority
        if await asyncio.to_thread(authority.refresh):
            log.info("CA phase", phase=authority.phase, signs=f"sha256:{pki_prefix(authority.ca.cert_pem)}…",
                     roots=len(authority.digests))
            self._notify()

    async def step(self) -> None:
        """Reads D; moves the rotation on when every holder has caught up with its phase."""
        authority = self.authority
        await self._refresh()
        phase = authority.phase
        if phase == rotation.NONE:
            return
        try:
            holders = await self.holders.list()
            holders = [h for h in holders if rotation.holder_current(phase, h, authority.roots)
                       or not await self.holders.removed(h)]
        except StoreUnavailable as exc:
            log.warning("CA rotation waits for etcd", error=str(exc))
            return
        following = rotation.next_phase(phase, holders, authority.roots)
        if following is None:
            behind = (phase, len(rotation.behind(phase, holders, authority.roots)))
            if behind != self._behind:
                log.info("CA rotation waiting", phase=phase, behind=behind[1], holders=len(holders))
                self._behind = behind
            return
        try:
            now = await asyncio.to_thread(rotation.advance, authority.directory, phase)
        except (OSError, pki.PKIError, rotation.RotationError) as exc:    # D not writable here: said, tried again
            log.error("CA rotation cannot move on", phase=phase, dir=authority.directory, error=str(exc))
            return
        log.info("CA rotation moved on", previous=phase, phase=now, holders=len(holders))
        await self._refresh()


def pki_prefix(cert_pem: bytes) -> str:
    return pki.ca_digest(cert_pem)[:12]
