"""Cluster tokens: 128 random bits as 32 hex characters, stored only as their SHA-256."""
from __future__ import annotations

import secrets

from swarmd.common.membership.urls import well_formed_token

TOKEN_BYTES = 16


def new_token() -> str:
    return secrets.token_hex(TOKEN_BYTES)


def well_formed(token: str) -> bool:
    return well_formed_token(token)


def fingerprint(token: str) -> str:
    """What may be logged of a token: its first four characters."""
    return (token[:4] + "…") if token else "(empty)"
