"""Command-line flags with `SWARM_*` environment twins, and the checks that turn flag values into
a daemon's validated configuration.

Every verb declares its flags through `add_flag`, so that `--heartbeat 2s` can also be given as
`SWARM_HEARTBEAT=2s`. An explicit flag wins over the environment. A value that cannot work, given
either way, is refused before anything starts: argparse refuses what its `type`/`choices` catch,
the `from_args` of each configuration raises `ConfigError` for the rest, and `swarmd.cli` prints
either as one `swarm VERB: error: …` line and exits 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SECRET_NAMES = ("token", "key", "secret", "password")


class ConfigError(ValueError):
    """A flag value (or a combination of flags) that cannot work; the message names the flag."""


def parse_duration(text: str) -> float:
    """'500ms', '2s', '1.5m', '3' (seconds) -> seconds as float."""
    m = _DURATION.match(str(text))
    if not m:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (use e.g. 500ms, 2s, 1m)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def env_name(flag: str) -> str:
    return "SWARM_" + flag.lstrip("-").replace("-", "_").upper()


def _env_converter(env: str, raw: str, conv, choices):
    """The flag's `type`, which also names the SWARM_* twin when the value it refuses came from it.

    argparse converts a string default with the flag's `type` only when the flag is not given and
    only for the verb being run, so a bad twin of another verb's flag never gets in the way; the
    default is `raw` itself, which is how a value from the environment is told from one typed."""
    def convert(text):
        from_env = text is raw
        try:
            value = conv(text) if conv else text
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            if not from_env:
                raise
            reason = (str(exc) if isinstance(exc, argparse.ArgumentTypeError)
                      else f"invalid {getattr(conv, '__name__', 'str')} value")
            raise argparse.ArgumentTypeError(f"{env}={raw!r}: {reason}") from None
        if from_env and choices is not None and value not in choices:
            raise argparse.ArgumentTypeError(
                f"{env}={raw!r}: invalid choice (choose from {', '.join(map(str, choices))})")
        return value
    convert.__name__ = getattr(conv, "__name__", "str")    # argparse names it in "invalid X value"
    return convert


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
            kwargs["type"] = _env_converter(env, raw, kwargs.get("type"), kwargs.get("choices"))
            kwargs["default"] = raw
            kwargs.pop("required", None)
    help_text = kwargs.get("help", "")
    kwargs["help"] = f"{help_text} [env {env}]".strip()
    parser.add_argument(flag, *aliases, **kwargs)


# -- checks used by the configurations' from_args -------------------------------------------------

def host_port(flag: str, value: str, *, listen: bool = False) -> tuple[str, int]:
    """'HOST:PORT' or '[V6]:PORT' -> (host, port), or ConfigError naming `flag`.

    `listen`: an address to bind, where port 0 (any free port) and an empty HOST are allowed."""
    text = str(value).strip()
    if text.startswith("["):
        host, _, tail = text[1:].partition("]")
        sep, port = tail[:1], tail[1:]
    else:
        host, sep, port = text.rpartition(":")
        if ":" in host:
            raise ConfigError(f"{flag} {value!r}: put an IPv6 host in brackets, [HOST]:PORT")
    if sep != ":" or not port.isdigit():
        raise ConfigError(f"{flag} {value!r}: use HOST:PORT")
    if not host and not listen:
        raise ConfigError(f"{flag} {value!r}: missing host")
    if not (0 if listen else 1) <= int(port) <= 65535:
        raise ConfigError(f"{flag} {value!r}: port {port} out of range")
    return host, int(port)


def address_list(flag: str, value: str) -> str:
    """A comma-separated list of HOST:PORT (redundant daemons); returns it unchanged."""
    parts = [p.strip() for p in str(value).split(",") if p.strip()]
    if not parts:
        raise ConfigError(f"{flag}: no address given")
    for part in parts:
        host_port(flag, part)
    return value


def positive(flag: str, value: float, *, zero: bool = False) -> float:
    """`value` when it is a finite number above 0 (or 0 itself with `zero`)."""
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        bound = "0 or more" if zero else "more than 0"
        raise ConfigError(f"{flag} {value:g}: must be {bound}")
    return value


# -- the start-up log line ------------------------------------------------------------------------

def describe(config) -> dict:
    """The effective configuration (a dataclass or an argparse Namespace) as a dict for the
    start-up log line: secrets masked, nested parts (TLS, cluster access) by their `describe()`."""
    items = (((f.name, getattr(config, f.name)) for f in dataclasses.fields(config))
             if dataclasses.is_dataclass(config) else vars(config).items())
    out = {}
    for k, v in sorted(items):
        if k.startswith("_") or callable(v):
            continue
        if hasattr(v, "describe"):
            v = v.describe()
        elif any(s in k for s in _SECRET_NAMES) and v:
            v = "***"
        elif isinstance(v, bytes):
            v = f"<{len(v)} bytes>"
        elif isinstance(v, str):
            v = mask_token_url(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[k] = v
    return out


def mask_token_url(value: str) -> str:
    """`token://0123abcd…` -> `token://0123…`: cluster tokens are secrets and never logged whole."""
    if value.startswith("token://") and len(value) > len("token://") + 4:
        return value[: len("token://") + 4] + "…"
    return value
