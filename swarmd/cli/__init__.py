"""The `swarm` console script: classic swarm's verbs, one module per verb.

Every verb has one start-up shape: `add_parser(subparsers)` registers its flags (each with a
`SWARM_*` twin, swarmd.common.config.add_flag) and sets `configure` and `func`. `configure(args)` turns
the parsed flags into the verb's frozen configuration and raises swarmd.common.config.ConfigError for
any value that cannot work; `func(config)` runs the verb and returns its exit code. A refused
value is one `swarm VERB: error: …` line on stderr and exit status 2, before anything starts,
as argparse does for the values it refuses itself.

`swarm --version` (or `-v`, as classic swarm) prints `swarm version X.Y.Z (swarmd)`.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from swarmd.common import logs, reload
from swarmd.common.config import ConfigError, add_flag

VERBS = ("discovery", "create", "list", "manage", "join", "leave", "up", "down", "ca", "token")
VERSION_FLAGS = ("--version", "-v")


def version_line() -> str:
    """What `swarm --version` prints: classic's `swarm version X (commit)` shape, naming swarmd."""
    from importlib import metadata
    try:
        version = metadata.version("swarmd")
    except metadata.PackageNotFoundError:     # run from a source tree that was never installed
        version = "unknown"
    return f"swarm version {version} (swarmd)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="swarm", description="swarmd: a cluster of Docker hosts as one",
                                     epilog="swarm --version (-v) prints the version")
    add_flag(parser, "--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add_flag(parser, "--log-format", default="text", choices=["text", "json"])
    add_flag(parser, "--env-file", default=None,
             help="file of SWARM_*=value lines read as defaults; SIGHUP re-reads its SWARM_LOG_LEVEL")
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND")
    for verb in VERBS:
        try:
            module = importlib.import_module(f"swarmd.cli.{verb}")
        except ModuleNotFoundError as exc:
            if exc.name != f"swarmd.cli.{verb}":
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] and args_in[0] in VERSION_FLAGS:
        # a flag of the program, not of a verb: read before argparse, which would want a verb (and a
        # SWARM_* twin, which a version has no use for)
        print(version_line())
        return 0
    env_file = reload.env_file_from(args_in)
    if env_file:
        try:
            reload.load_env_file(env_file)
        except OSError as exc:
            print(f"swarm: error: cannot read --env-file {env_file}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        config = args.configure(args)
    except ConfigError as exc:
        prog = getattr(args, "verb_prog", None) or f"swarm {args.verb}"
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    logs.setup(args.log_format, args.log_level)
    try:
        return int(args.func(config) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
