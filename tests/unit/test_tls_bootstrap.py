"""Bootstrap mode's pure parts: join tokens, certificate subjects and the checks on them, the
bootstrap CA, and when a certificate is renewed."""
from __future__ import annotations

import argparse
import datetime
import random

import pytest
from cryptography import x509

from swarmd.common import join_tokens, node_certs, pki
from swarmd.common.cluster_access import Bootstrap, callers_check
from swarmd.common.config import ConfigError
from swarmd.discovery.ca import refusal, server_hosts, valid_common_name

DIGEST = "ab" * 32
CLUSTER = "0123456789abcdef0123456789abcdef"


# -- join tokens ---------------------------------------------------------------------------------

def test_a_new_token_round_trips_and_never_shows_its_secret():
    token = join_tokens.new_token(DIGEST)
    assert join_tokens.parse(str(token)) == token
    assert join_tokens.parse(f"token://{token}") == token
    assert len(token.secret) == 25 and token.secret.isalnum() and token.secret.islower()
    assert token.secret not in repr(token) and token.secret not in token.masked
    assert token.masked == f"SWMTKN-1-{DIGEST[:12]}…"
    assert join_tokens.new_token(DIGEST).secret != token.secret


def test_bootstrap_tokens_are_told_from_explicit_pki_tokens():
    assert join_tokens.is_bootstrap(f"token://SWMTKN-1-{DIGEST}-{'a1' * 12}b")
    # the explicit mode's SWMTKN token carries the 32-hex cluster token: not a bootstrap token
    assert not join_tokens.is_bootstrap(f"token://SWMTKN-1-{DIGEST}-{'ab' * 16}")
    assert not join_tokens.is_bootstrap("token://" + "ab" * 16)


@pytest.mark.parametrize("bad", ["", "SWMTKN-1-xyz", f"SWMTKN-2-{DIGEST}-{'a' * 25}", f"SWMTKN-1-{DIGEST[:-1]}-{'a' * 25}",
                                 f"SWMTKN-1-{DIGEST}-{'A' * 25}", f"SWMTKN-1-{DIGEST}-{'a' * 24}"])
def test_malformed_tokens_are_refused_without_echoing_them(bad):
    with pytest.raises(join_tokens.TokenError) as err:
        join_tokens.parse(bad)
    assert bad[-20:] not in str(err.value) or not bad


def test_only_the_digest_prefix_of_an_offered_token_is_logged():
    secret = "s3cr3t" * 4 + "x"
    assert secret not in join_tokens.masked_prefix(f"SWMTKN-1-{DIGEST}-{secret}")
    assert join_tokens.masked_prefix("") == "(empty)"


# -- certificates ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ca():
    return pki.create_ca("test CA")


def test_an_issued_certificate_names_cluster_role_and_node(ca):
    csr, _ = pki.make_csr("0123456789abcdef", ["10.0.0.5", "swarm-manager.evil"])
    cert = pki.sign_csr(ca, csr, cluster=CLUSTER, role=pki.ROLE_WORKER, common_name="0123456789abcdef", lifetime=90)
    ident = pki.identity(cert)
    assert (ident.common_name, ident.cluster, ident.role) == ("0123456789abcdef", CLUSTER, "swarm-worker")
    assert (ident.not_after - ident.not_before).total_seconds() == pytest.approx(99, abs=1)
    names = x509.load_pem_x509_certificate(cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = names.get_values_for_type(x509.DNSName)
    assert f"swarm-worker.{CLUSTER}" in dns
    assert "swarm-manager.evil" not in dns          # role names are the CA's to give, never asked for
    assert pki.issued_by(cert, ca.cert_pem) and not pki.issued_by(cert, pki.create_ca().cert_pem)


def test_a_csr_whose_signature_fails_is_refused(ca):
    csr, _ = pki.make_csr("0123456789abcdef")
    broken = csr.replace(csr[100:104], b"AAAA") if csr[100:104] != b"AAAA" else csr.replace(csr[100:104], b"BBBB")
    with pytest.raises(pki.PKIError):
        pki.sign_csr(ca, broken, cluster=CLUSTER, role=pki.ROLE_WORKER, common_name="x" * 8, lifetime=60)


def _ident(cluster=CLUSTER, role=pki.ROLE_WORKER, cn="0123456789abcdef"):
    now = datetime.datetime.now(datetime.timezone.utc)
    return pki.Identity(cn, cluster, role, 1, now, now)


def test_refusal_checks_cluster_and_role():
    nodes = (pki.ROLE_WORKER, pki.ROLE_MANAGER)
    assert refusal(_ident(), CLUSTER, nodes) is None
    assert "another cluster" in refusal(_ident(cluster="f" * 32), CLUSTER, nodes)
    assert "cannot make this call" in refusal(_ident(), CLUSTER, (pki.ROLE_MANAGER,))
    assert "needs a certificate" in refusal(None, CLUSTER, nodes)
    assert refusal(_ident(cluster="", role=pki.ROLE_ADMIN), "", (pki.ROLE_ADMIN,)) is None
    assert "administrator" in refusal(_ident(cluster="", role=pki.ROLE_ADMIN), CLUSTER, nodes)
    assert "another cluster" in refusal(_ident(), "", nodes)        # no cluster named: nothing to act on


def test_the_agents_caller_check_takes_managers_of_its_cluster_only(ca):
    check = callers_check(CLUSTER, (pki.ROLE_MANAGER,))

    def cert(cluster, role):
        csr, _ = pki.make_csr("m0123456789abcdef")
        return pki.sign_csr(ca, csr, cluster=cluster, role=role, common_name="m0123456789abcdef", lifetime=60)
    assert check(cert(CLUSTER, pki.ROLE_MANAGER)) is None
    assert check(cert("f" * 32, pki.ROLE_MANAGER))
    assert check(cert(CLUSTER, pki.ROLE_WORKER))
    assert check(None)


@pytest.mark.parametrize("name,ok", [("0123456789abcdef", True), ("m0123456789abcdef", True), ("short", False),
                                     ("-leadingdash1", False), ("has space here", False), ("x" * 65, False)])
def test_common_names_are_node_ids(name, ok):
    assert valid_common_name(name) is ok


def test_the_bootstrap_ca_is_derived_from_the_digest_alone():
    client = pki.bootstrap_client(DIGEST)
    assert pki.issued_by(client.cert_pem, pki.bootstrap_ca_pem(DIGEST))
    assert not pki.issued_by(client.cert_pem, pki.bootstrap_ca_pem("cd" * 32))
    assert pki.identity(client.cert_pem).role == pki.BOOTSTRAP_OU


def test_the_root_a_node_trusts_is_the_one_the_token_names(ca):
    from cryptography.hazmat.primitives import serialization
    der = x509.load_pem_x509_certificate(ca.cert_pem).public_bytes(serialization.Encoding.DER)
    other = pki.create_ca("other")
    other_der = x509.load_pem_x509_certificate(other.cert_pem).public_bytes(serialization.Encoding.DER)
    token = join_tokens.JoinToken(pki.ca_digest(ca.cert_pem), "a" * 25)
    assert node_certs.root_for(token, [b"leaf", other_der, der]) == x509.load_der_x509_certificate(der).public_bytes(
        serialization.Encoding.PEM)
    with pytest.raises(node_certs.BootstrapError) as err:
        node_certs.root_for(token, [b"leaf", other_der])
    assert "does not hold the token's CA" in str(err.value) and "a" * 25 not in str(err.value)


@pytest.mark.parametrize("text,seconds", [("40s", 40), ("2h", 7200), ("90d", 90 * 86400), ("30m", 1800), ("120", 120)])
def test_certificate_lifetimes(text, seconds):
    assert pki.parse_lifetime(text) == seconds


@pytest.mark.parametrize("bad", ["", "soon", "5s", "-1d", "1w"])
def test_bad_certificate_lifetimes(bad):
    with pytest.raises(ValueError):
        pki.parse_lifetime(bad)


# -- renewal ----------------------------------------------------------------------------------------

def test_renewal_falls_between_half_and_four_fifths_of_the_life():
    start = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    end = start + datetime.timedelta(seconds=100)
    rand = random.Random(7)
    for _ in range(200):
        delay = node_certs.renewal_delay(start, end, start, rand.uniform(*node_certs.RENEW_SPAN))
        assert 50 <= delay <= 80
    assert node_certs.renewal_delay(start, end, start + datetime.timedelta(seconds=30), 0.5) == 20
    assert node_certs.renewal_delay(start, end, start + datetime.timedelta(seconds=90), 0.5) == 0


# -- flags -------------------------------------------------------------------------------------------

def _args(url, **kw):
    base = dict(discovery_url=url, discovery_addr="127.0.0.1:4000", state_dir="/tmp/state",
                tlscacert=None, tlscert=None, tlskey=None)
    base.update(kw)
    return argparse.Namespace(**base)


def test_bootstrap_mode_is_a_bootstrap_token_without_certificate_files():
    token = join_tokens.new_token(DIGEST)
    b = Bootstrap.from_args(_args(f"token://{token}"))
    assert b.token == token and b.state_dir == "/tmp/state"
    assert token.secret not in repr(b)
    assert Bootstrap.from_args(_args(f"token://SWMTKN-1-{DIGEST}-{'ab' * 16}")) is None     # explicit PKI
    with pytest.raises(ConfigError, match="leave out --tlscacert"):
        Bootstrap.from_args(_args(f"token://{token}", tlscert="/c.pem"))
    with pytest.raises(ConfigError, match="--discovery-addr"):
        Bootstrap.from_args(_args(f"token://{token}", discovery_addr=None))
    assert Bootstrap.from_args(_args(f"token://{token}", verb="manage")) is not None
    with pytest.raises(ConfigError, match="`swarm list` is not available"):
        Bootstrap.from_args(_args(f"token://{token}", verb="list"))


def test_a_wildcard_listener_is_named_by_the_hosts_names():
    assert server_hosts("10.0.0.5:4000")[0] == "10.0.0.5"
    assert "127.0.0.1" in server_hosts("0.0.0.0:4000") and "0.0.0.0" not in server_hosts("0.0.0.0:4000")
