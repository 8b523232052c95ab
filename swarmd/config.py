"""Command-line flags with `SWARM_*` environment twins, and duration parsing.

Every daemon declares its flags through `add_flag`, so that `--heartbeat 2s` can also be given as
`SWARM_HEARTBEAT=2s`. An explicit flag wins over the environment.
"""
from __future__ import annotations

import argparse
import os
import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """'500ms', '2s', '1.5m', '3' (seconds) -> seconds as float."""
    m = _DURATION.match(str(text))
    if not m:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (use e.g. 500ms, 2s, 1m)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def env_name(flag: str) -> str:
    return "SWARM_" + flag.lstrip("-").replace("-", "_").upper()


def add_flag(parser: argparse.ArgumentParser, flag: str, *aliases: str, **kwargs) -> None:
    """Adds `flag` whose default comes from the SWARM_* twin when that is set."""
    env = env_name(flag)
    raw = os.environ.get(env)
    action = kwargs.get("action")
    if raw is not None:
        if action == "store_true":
            kwargs["default"] = raw.strip().lower() not in ("", "0", "false", "no", "off")
        elif action == "append":
            kwargs["default"] = [v for v in raw.split(",") if v]
        else:
            conv = kwargs.get("type")
            kwargs["default"] = conv(raw) if conv else raw
            kwargs.pop("required", None)
    help_text = kwargs.get("help", "")
    kwargs["help"] = f"{help_text} [env {env}]".strip()
    parser.add_argument(flag, *aliases, **kwargs)


def describe(args: argparse.Namespace) -> dict:
    """The effective configuration as a dict for the start-up log line (secrets masked)."""
    out = {}
    for k, v in sorted(vars(args).items()):
        if k.startswith("_") or callable(v):
            continue
        if any(s in k for s in ("token", "key", "secret", "password")) and v:
            v = "***"
        elif isinstance(v, str):
            v = mask_token_url(v)
        out[k] = v
    return out


def mask_token_url(value: str) -> str:
    """`token://0123abcd…` -> `token://0123…`: cluster tokens are secrets and never logged whole."""
    if value.startswith("token://") and len(value) > len("token://") + 4:
        return value[: len("token://") + 4] + "…"
    return value
