"""Bootstrap join tokens: `SWMTKN-1-<CA digest>-<secret>`, as SwarmKit's.

The digest is the SHA-256 of the cluster CA certificate (64 hex characters): a joining node checks
the CA the discovery daemon serves against it before it sends anything secret. The secret is 25
characters of [0-9a-z] (about 129 bits), as SwarmKit's; that length is what tells a bootstrap token
from the explicit-PKI token of the same prefix, whose secret is the 32-hex cluster token
(`swarm create --tlsverify …`, see swarmd.common.membership.urls).

Pure: no I/O. The discovery daemon keeps only the secret's SHA-256.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

PREFIX = "SWMTKN-1-"
SECRET_LENGTH = 25
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
BOOTSTRAP_RE = re.compile(r"^SWMTKN-1-([0-9a-f]{64})-([0-9a-z]{25})$")


class TokenError(ValueError):
    """A string that is not a bootstrap join token; the message never repeats the secret."""


@dataclass(frozen=True)
class JoinToken:
    ca_digest: str
    secret: str

    def __str__(self) -> str:
        return f"{PREFIX}{self.ca_digest}-{self.secret}"

    def __repr__(self) -> str:               # never the secret, even in a traceback
        return f"JoinToken({self.masked})"

    @property
    def masked(self) -> str:
        """What may be logged: the CA digest's prefix only."""
        return f"{PREFIX}{self.ca_digest[:12]}…"

    @property
    def secret_hash(self) -> str:
        return secret_hash(self.secret)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))


def new_token(ca_digest: str) -> JoinToken:
    return JoinToken(ca_digest.lower(), new_secret())


def is_bootstrap(text: str) -> bool:
    """Whether `text` (a token, or a token:// URL) has the bootstrap form."""
    text = text.strip()
    if text.lower().startswith("token://"):
        text = text[len("token://"):].rstrip("/")
    return bool(BOOTSTRAP_RE.match(text))


def parse(text: str) -> JoinToken:
    """A bootstrap token, given bare or as a token:// URL; TokenError otherwise."""
    raw = text.strip()
    if raw.lower().startswith("token://"):
        raw = raw[len("token://"):].rstrip("/")
    m = BOOTSTRAP_RE.match(raw)
    if not m:
        raise TokenError(f"malformed join token: expected {PREFIX}<64 hex CA digest>-<25-character secret> "
                         "as printed by `swarm create --ca-dir`")
    return JoinToken(m.group(1), m.group(2))


def masked_prefix(text: str) -> str:
    """What may be logged of any string offered as a token: its prefix up to the digest's 12th character."""
    return text[:len(PREFIX) + 12] + "…" if text.startswith(PREFIX) else (text[:4] + "…" if text else "(empty)")
