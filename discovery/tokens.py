"""Cluster tokens: 128 random bits as 32 hex characters, stored only as their SHA-256.

Bootstrap mode (`swarm discovery --ca-dir`) adds join tokens (swarmd.common.join_tokens): each
names a cluster and a role, and is kept in etcd only as the SHA-256 of its secret:

    /swarmd/jointokens/<sha256(secret) hex>     JSON {"cluster": ID, "role": "swarm-worker"|"swarm-manager"}

A cluster may hold several tokens of a role (`swarm create --cluster` adds one); rotating a role
deletes every earlier one.
"""
from __future__ import annotations

import json
import secrets

from swarmd.common.join_tokens import JoinToken
from swarmd.common.membership.urls import well_formed_token

TOKEN_BYTES = 16
JOIN_ROOT = "/swarmd/jointokens/"


def new_token() -> str:
    return secrets.token_hex(TOKEN_BYTES)


def well_formed(token: str) -> bool:
    return well_formed_token(token)


def fingerprint(token: str) -> str:
    """What may be logged of a token: its first four characters."""
    return (token[:4] + "…") if token else "(empty)"


def join_key(secret_hash: str) -> bytes:
    return (JOIN_ROOT + secret_hash).encode()


class JoinTokens:
    """The join tokens of every cluster, in etcd (the store's `run` maps failures to StoreUnavailable)."""

    def __init__(self, store):
        self.store = store

    async def add(self, token: JoinToken, cluster: str, role: str) -> None:
        value = json.dumps({"cluster": cluster, "role": role}).encode()
        await self.store.run(lambda c: c.put(join_key(token.secret_hash), value))

    async def lookup(self, token: JoinToken) -> tuple[str, str] | None:
        """(cluster ID, role) the token admits to, or None."""
        kv = await self.store.run(lambda c: c.get(join_key(token.secret_hash)))
        if kv is None:
            return None
        try:
            doc = json.loads(kv.value)
            return str(doc["cluster"]), str(doc["role"])
        except (ValueError, KeyError, TypeError):
            return None

    async def retire(self, cluster: str, role: str, keep: JoinToken | None = None) -> int:
        """Deletes every token of `cluster` and `role` but `keep`; how many went."""
        listing = await self.store.run(lambda c: c.get_prefix(JOIN_ROOT.encode()))
        kept = join_key(keep.secret_hash) if keep is not None else None
        doomed = []
        for kv in listing:
            try:
                doc = json.loads(kv.value)
            except ValueError:
                continue
            if doc.get("cluster") == cluster and doc.get("role") == role and kv.key != kept:
                doomed.append(kv.key)
        for key in doomed:
            await self.store.run(lambda c, k=key: c.delete(k))
        return len(doomed)
