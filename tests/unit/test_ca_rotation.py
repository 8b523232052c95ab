"""CA rotation in bootstrap mode: the phases' policy (pure) and the files that record them in D."""
from __future__ import annotations

import ssl
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization

from swarmd.common import ca_rotation as rot
from swarmd.common import pki
from swarmd.common.ca_rotation import DROP, NONE, SIGN, TRUST, Holder

OLD, NEW = "0" * 64, "1" * 64
DIGESTS = {"old": OLD, "new": NEW}


def holder(signer: str, *bundle: str) -> Holder:
    return Holder("c/n", signer, frozenset(bundle))


@pytest.mark.parametrize("phase, current, behind", [
    (TRUST, [holder(OLD, OLD, NEW)], [holder(OLD, OLD), holder("", OLD, NEW)]),
    (SIGN, [holder(NEW, OLD, NEW)], [holder(OLD, OLD, NEW), holder(NEW, NEW)]),
    (DROP, [holder(NEW, NEW)], [holder(NEW, OLD, NEW), holder(OLD, NEW)]),
])
def test_a_holder_is_current_when_its_signer_and_bundle_are_the_phases(phase, current, behind):
    assert all(rot.holder_current(phase, h, DIGESTS) for h in current)
    assert not any(rot.holder_current(phase, h, DIGESTS) for h in behind)


def test_outside_a_rotation_the_one_root_is_current():
    assert rot.holder_current(NONE, holder(OLD, OLD), {"old": OLD})
    assert not rot.holder_current(NONE, holder(OLD, OLD, NEW), {"old": OLD})


def test_the_rotation_moves_on_only_when_every_holder_caught_up():
    ready, late = holder(OLD, OLD, NEW), holder(OLD, OLD)
    assert rot.next_phase(TRUST, [ready, late], DIGESTS) is None
    assert rot.behind(TRUST, [ready, late], DIGESTS) == ["c/n"]
    assert rot.next_phase(TRUST, [ready], DIGESTS) == SIGN
    assert rot.next_phase(SIGN, [holder(NEW, NEW, OLD)], DIGESTS) == DROP
    assert rot.next_phase(DROP, [holder(NEW, NEW)], DIGESTS) == NONE      # over
    assert rot.next_phase(TRUST, [], DIGESTS) == SIGN                      # nobody to wait for
    assert rot.next_phase(NONE, [], DIGESTS) is None                       # no rotation


def test_plans_keep_the_daemon_on_the_old_ca_until_the_old_root_is_dropped():
    # join tokens of the old CA work while the daemon serves from it: through `sign`
    assert [rot.plan(p).serving for p in (NONE, TRUST, SIGN, DROP)] == ["old", "old", "old", "new"]
    assert [rot.plan(p).leaves for p in (NONE, TRUST, SIGN, DROP)] == ["old", "old", "new", "new"]
    assert rot.plan(DROP).bundle == ("new",)


def _verifies(ca_pem: bytes, cert_pem: bytes, tmp_path) -> bool:
    (tmp_path / "ca.pem").write_bytes(ca_pem)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    out = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.pem"), str(tmp_path / "cert.pem")],
                         capture_output=True, timeout=10)
    return out.returncode == 0


def test_the_files_go_through_every_phase_and_leave_the_new_ca(tmp_path):
    d = tmp_path / "ca"
    old = pki.create_ca()
    pki.write_ca(d, old)
    assert rot.read(d).phase == NONE and rot.read(d).bundle_pem == old.cert_pem
    state = rot.start(d)
    new = state.new
    assert state.phase == TRUST and state.leaf_signer == old
    assert [pki.der_digest(c) for c in pki.bundle(state.bundle_pem)] == [pki.ca_digest(old.cert_pem),
                                                                          pki.ca_digest(new.cert_pem)]
    with pytest.raises(rot.RotationError, match="already under way"):
        rot.start(d)
    assert rot.advance(d, TRUST) == SIGN
    assert rot.advance(d, TRUST) == SIGN            # another daemon moved it already: nothing more
    assert rot.read(d).leaf_signer == new and rot.read(d).serving_signer == old
    assert rot.advance(d, SIGN) == DROP
    assert rot.read(d).bundle_pem == new.cert_pem and rot.read(d).serving_signer == new
    assert rot.advance(d, DROP) == NONE
    after = rot.read(d)
    assert after.phase == NONE and after.old == new and after.new is None
    assert pki.read_ca(d / "previous") == old
    assert not (d / "next").exists() and not (d / rot.STATE_FILE).exists()
    issued = pki.issue(after.leaf_signer, "alice", kind="client")
    assert _verifies(after.bundle_pem, issued.cert_pem, tmp_path)
    assert not _verifies(old.cert_pem, issued.cert_pem, tmp_path)


def test_a_rotation_needs_a_ca_and_a_readable_phase(tmp_path):
    with pytest.raises(pki.PKIError):
        rot.start(tmp_path / "nothing")
    pki.write_ca(tmp_path, pki.create_ca())
    (tmp_path / rot.STATE_FILE).write_text('{"phase": "sideways"}')
    with pytest.raises(rot.RotationError, match="unknown phase"):
        rot.read(tmp_path)


def test_a_served_context_follows_the_renewed_bundle(tmp_path):
    """The Docker API's context: after a swap to a one-root bundle the old root is no longer trusted
    (a context reloaded in place would keep it)."""
    from swarmd.common.tls import LiveCredentials, TLSConfig
    old, new = pki.create_ca("old"), pki.create_ca("new")
    server = pki.issue(old, "srv")
    d = tmp_path / "state"
    d.mkdir()
    for name, data in (("ca.pem", old.cert_pem + new.cert_pem), ("cert.pem", server.cert_pem),
                       ("key.pem", server.key_pem)):
        (d / name).write_bytes(data)
    live = LiveCredentials(d, old.cert_pem + new.cert_pem, server.cert_pem, server.key_pem)
    ctx = TLSConfig.from_live(live).server_ssl_context()
    assert ctx.sni_callback is not None and ctx.verify_mode == ssl.CERT_REQUIRED
    renewed = pki.issue(new, "srv")
    for name, data in (("ca.pem", new.cert_pem), ("cert.pem", renewed.cert_pem), ("key.pem", renewed.key_pem)):
        (d / name).write_bytes(data)
    live.swap(new.cert_pem, renewed.cert_pem, renewed.key_pem)

    class Handshake:
        context = ctx
    hs = Handshake()
    ctx.sni_callback(hs, None, ctx)
    assert hs.context is not ctx
    roots = [c["subject"] for c in hs.context.get_ca_certs()]
    assert roots == [((("commonName", "new"),), (("organizationName", "swarmd"),))]


def test_the_discovery_authority_follows_the_phases(tmp_path):
    """What the daemon signs with, serves with and trusts, read again from D at each phase."""
    from swarmd.discovery.ca import Authority
    pki.write_ca(tmp_path, pki.create_ca("old"))
    authority = Authority.from_dir(str(tmp_path), 3600, "127.0.0.1:4000")
    old = pki.ca_digest((tmp_path / "ca.pem").read_bytes())
    assert not authority.refresh()
    new = pki.ca_digest(rot.start(tmp_path).new.cert_pem)
    expected = {TRUST: (old, old, [old, new]), SIGN: (new, old, [new, old]), DROP: (new, new, [new]),
                NONE: (new, new, [new])}
    for phase in (TRUST, SIGN, DROP, NONE):
        if phase != TRUST:
            rot.advance(tmp_path, authority.phase)
        assert authority.refresh() and authority.phase == phase
        leaves, serving, roots = expected[phase]
        assert pki.ca_digest(authority.ca.cert_pem) == leaves
        assert authority.digest == serving                     # what new join tokens name
        assert list(authority.digests) == roots
        _, chain = authority.serving_pair()
        served = pki.bundle(chain)[0].public_bytes(serialization.Encoding.PEM)
        assert authority.signer_of(served) == serving
        trusted = [pki.der_digest(c) for c in pki.bundle(authority.client_roots())]
        assert old in trusted if phase in (TRUST, SIGN) else old not in trusted


def test_a_client_context_follows_the_renewed_bundle(tmp_path):
    """A replica manager's context for the primary: a connection made after a swap to the new root
    alone no longer accepts a server of the old CA."""
    import asyncio
    from swarmd.common.tls import LiveCredentials, TLSConfig
    old, new = pki.create_ca("old"), pki.create_ca("new")
    server, client = pki.issue(old, "srv"), pki.issue(old, "cli", kind="client")
    (tmp_path / "srv.pem").write_bytes(server.cert_pem)
    (tmp_path / "srv.key").write_bytes(server.key_pem)
    d = tmp_path / "state"
    d.mkdir()
    for name, data in (("ca.pem", old.cert_pem + new.cert_pem), ("cert.pem", client.cert_pem),
                       ("key.pem", client.key_pem)):
        (d / name).write_bytes(data)
    live = LiveCredentials(d, old.cert_pem + new.cert_pem, client.cert_pem, client.key_pem)
    ctx = TLSConfig.from_live(live).client_ssl_context()

    async def connect(server_ctx) -> bool:
        srv = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_ctx)
        port = srv.sockets[0].getsockname()[1]
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
            writer.close()
            return True
        except ssl.SSLError:
            return False
        finally:
            srv.close()

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "srv.pem", tmp_path / "srv.key")
    assert asyncio.run(connect(server_ctx))
    renewed = pki.issue(new, "cli", kind="client")
    for name, data in (("ca.pem", new.cert_pem), ("cert.pem", renewed.cert_pem), ("key.pem", renewed.key_pem)):
        (d / name).write_bytes(data)
    live.swap(new.cert_pem, renewed.cert_pem, renewed.key_pem)
    assert not asyncio.run(connect(server_ctx))
