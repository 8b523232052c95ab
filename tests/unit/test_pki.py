"""The cluster CA, issued certificates, TLS flag validation and digest-carrying join tokens."""
from __future__ import annotations

import argparse
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from swarmd.common import pki
from swarmd.common.membership import MembershipError, open_registrar
from swarmd.common.membership import urls
from swarmd.common.tls import TLSConfig, TLSConfigError, add_tls_flags

SECRET = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def ca() -> pki.Issued:
    return pki.create_ca("test CA")


def test_ca_is_a_ca_that_signs_leaves_only(ca):
    cert = x509.load_pem_x509_certificate(ca.cert_pem)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca and bc.path_length == 0
    assert cert.issuer == cert.subject


def test_node_certificate_serves_and_calls_and_names_hosts(ca):
    issued = pki.issue(ca, "node1", kind="node", hosts=["10.0.0.5", "node1.example", "[::1]"])
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5"),
                                                       ipaddress.ip_address("::1")]
    assert san.get_values_for_type(x509.DNSName) == ["node1.example"]
    assert cert.issuer == x509.load_pem_x509_certificate(ca.cert_pem).subject
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_pem))


def test_client_certificate_only_calls(ca):
    cert = x509.load_pem_x509_certificate(pki.issue(ca, "alice", kind="client").cert_pem)
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_bad_kind_and_mismatched_ca_key_are_refused(ca):
    with pytest.raises(pki.PKIError, match="unknown certificate kind"):
        pki.issue(ca, "x", kind="root")
    other = pki.create_ca("other")
    with pytest.raises(pki.PKIError, match="does not belong"):
        pki.issue(pki.Issued(ca.cert_pem, other.key_pem), "x")


def test_digest_is_stable_and_differs_between_cas(ca):
    d = pki.ca_digest(ca.cert_pem)
    assert len(d) == 64 and d == pki.ca_digest(ca.cert_pem)
    assert d != pki.ca_digest(pki.create_ca().cert_pem)
    with pytest.raises(pki.PKIError):
        pki.ca_digest(b"not a certificate")


def test_files_layout_and_modes(tmp_path, ca):
    pki.write_ca(tmp_path / "ca", ca)
    assert (tmp_path / "ca" / "ca-key.pem").stat().st_mode & 0o777 == 0o600
    with pytest.raises(pki.PKIError, match="already there"):
        pki.write_ca(tmp_path / "ca", ca)
    again = pki.read_ca(tmp_path / "ca")
    pki.write_issued(tmp_path / "n1", again.cert_pem, pki.issue(again, "n1"))
    assert sorted(p.name for p in (tmp_path / "n1").iterdir()) == ["ca.pem", "cert.pem", "key.pem"]
    assert (tmp_path / "n1" / "key.pem").stat().st_mode & 0o777 == 0o600
    with pytest.raises(pki.PKIError, match="cannot read the CA"):
        pki.read_ca(tmp_path / "missing")


def _args(*argv):
    p = argparse.ArgumentParser()
    add_tls_flags(p)
    return p.parse_args(list(argv))


def test_tls_flags(tmp_path, ca):
    pki.write_issued(tmp_path, ca.cert_pem, pki.issue(ca, "m"))
    files = ["--tlscacert", str(tmp_path / "ca.pem"), "--tlscert", str(tmp_path / "cert.pem"),
             "--tlskey", str(tmp_path / "key.pem")]
    assert TLSConfig.from_args(_args()) is None
    cfg = TLSConfig.from_args(_args("--tlsverify", *files))
    assert cfg.verify and cfg.ca_digest() == pki.ca_digest(ca.cert_pem)
    ctx = cfg.server_ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert TLSConfig.from_args(_args("--tls", *files)).server_ssl_context().verify_mode == ssl.CERT_NONE
    with pytest.raises(TLSConfigError, match="needs --tlscacert"):
        TLSConfig.from_args(_args("--tlsverify"))
    with pytest.raises(TLSConfigError, match="go together"):
        TLSConfig.from_args(_args("--tls", "--tlscert", str(tmp_path / "cert.pem")))
    with pytest.raises(TLSConfigError, match="No such file"):
        TLSConfig.from_args(_args("--tlsverify", "--tlscacert", str(tmp_path / "nope.pem")))
    other = pki.issue(pki.create_ca(), "m")
    (tmp_path / "other-key.pem").write_bytes(other.key_pem)
    with pytest.raises(TLSConfigError, match="--tlscert"):
        TLSConfig.from_args(_args("--tls", "--tlscert", str(tmp_path / "cert.pem"),
                                  "--tlskey", str(tmp_path / "other-key.pem")))


def test_join_token_carries_the_ca_digest(ca):
    digest = pki.ca_digest(ca.cert_pem)
    token = urls.join_token(digest, SECRET)
    assert token == f"SWMTKN-1-{digest}-{SECRET}"
    assert urls.parse(f"token://{token}") == urls.TokenURL(SECRET, digest)
    assert urls.parse(f"token://{SECRET}") == urls.TokenURL(SECRET)
    with pytest.raises(urls.URLError, match="malformed token"):
        urls.parse(f"token://SWMTKN-1-{digest[:-1]}-{SECRET}")


async def test_registrar_checks_the_ca_against_the_token(tmp_path, ca):
    pki.write_issued(tmp_path, ca.cert_pem, pki.issue(ca, "n"))
    good = TLSConfig.from_files(str(tmp_path / "ca.pem"), str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    url = f"token://{urls.join_token(pki.ca_digest(ca.cert_pem), SECRET)}"
    with pytest.raises(MembershipError, match="TLS cluster"):
        open_registrar(url, "127.0.0.1:1")
    other_dir = tmp_path / "other"
    other = pki.create_ca()
    pki.write_issued(other_dir, other.cert_pem, pki.issue(other, "n"))
    wrong = TLSConfig.from_files(str(other_dir / "ca.pem"), str(other_dir / "cert.pem"), str(other_dir / "key.pem"))
    with pytest.raises(MembershipError, match="not the cluster's CA"):
        open_registrar(url, "127.0.0.1:1", tls=wrong)
    registrar = open_registrar(url, "127.0.0.1:1", tls=good)
    assert registrar.token == SECRET
    await registrar.close()


def test_address_lists_become_one_grpc_target():
    from swarmd.common.tls import grpc_target
    assert grpc_target("10.0.0.1:4000") == "10.0.0.1:4000"
    assert grpc_target("10.0.0.1:4000, 10.0.0.2:4000") == "ipv4:10.0.0.1:4000,10.0.0.2:4000"
    assert grpc_target("[::1]:4000,[::2]:4000") == "ipv6:[::1]:4000,[::2]:4000"
    for bad in ("10.0.0.1:4000,nowhere", "10.0.0.1:4000,[::1]:4000"):
        with pytest.raises(ValueError):
            grpc_target(bad)
