"""SIGHUP: re-read the environment file and apply what a running daemon can change safely.

`swarm --env-file FILE …` (or `SWARM_ENV_FILE=FILE`) reads `SWARM_*=value` lines from FILE as
defaults under the real environment and the command line. On SIGHUP the daemon reads FILE
again and applies `SWARM_LOG_LEVEL`; every other setting needs a restart.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

from swarmd.common import logs

log = logs.get("reload")

LEVELS = ("debug", "info", "warning", "error")


def read_env_file(path: str | os.PathLike) -> dict[str, str]:
    """`KEY=value` lines (systemd EnvironmentFile syntax, simple form): comments and blanks skipped."""
    values: dict[str, str] = {}
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def env_file_from(argv: list[str]) -> str | None:
    """The env file named by `--env-file F`/`--env-file=F` in argv, else by SWARM_ENV_FILE."""
    for i, arg in enumerate(argv):
        if arg == "--env-file" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--env-file="):
            return arg.split("=", 1)[1]
    return os.environ.get("SWARM_ENV_FILE") or None


def load_env_file(path: str) -> None:
    """Puts the file's settings into os.environ where the environment does not set them already."""
    for key, value in read_env_file(path).items():
        os.environ.setdefault(key, value)


def reload(env_file: str | None) -> None:
    if not env_file:
        log.info("SIGHUP: no --env-file to re-read; nothing to reload")
        return
    try:
        values = read_env_file(env_file)
    except OSError as exc:
        log.warning("SIGHUP: cannot read the env file; keeping the current settings", path=env_file,
                    error=str(exc))
        return
    level = values.get("SWARM_LOG_LEVEL", "").strip().lower()
    if not level:
        log.info("SIGHUP: env file re-read; no SWARM_LOG_LEVEL in it", path=env_file)
        return
    if level not in LEVELS:
        log.warning("SIGHUP: invalid SWARM_LOG_LEVEL; keeping the current level", path=env_file, level=level)
        return
    # said at whichever of the two levels is more verbose, so the line is seen either way
    quieter = LEVELS.index(level) > LEVELS.index(logs.current_level())
    if quieter:
        log.info("SIGHUP: configuration reloaded", path=env_file, log_level=level)
    logs.set_level(level)
    if not quieter:
        log.info("SIGHUP: configuration reloaded", path=env_file, log_level=level)


def install(loop, env_file: str | None) -> None:
    """Handles SIGHUP on `loop` (instead of the default, which ends the process)."""
    loop.add_signal_handler(signal.SIGHUP, reload, env_file)


def uninstall(loop) -> None:
    loop.remove_signal_handler(signal.SIGHUP)
