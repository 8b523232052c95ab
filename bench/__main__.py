"""`python -m bench [--quick] [--only NAME …]`: run the benchmarks, print the table, write JSON."""
from __future__ import annotations

import argparse
import importlib
import sys

from bench.report import RESULTS, Row, print_table, save

SUITES = ("placement", "proxy", "throughput", "scale", "failover", "ui", "memory")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--only", action="append", choices=SUITES, help="run only these suites")
    parser.add_argument("--ui-nodes", type=int, metavar="N",
                        help="hollow nodes for the ui suite (default 1,000; 30 containers each)")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    for name in args.only or SUITES:
        module = importlib.import_module(f"bench.{name}")
        print(f"# {name} …", file=sys.stderr, flush=True)
        # only the ui suite takes a fleet size: a smaller fleet where 1,000 nodes take too long
        extra = {"nodes": args.ui_nodes} if name == "ui" and args.ui_nodes else {}
        rows += module.run(quick=args.quick, **extra)
    print_table(rows)
    if args.only:   # a partial run writes its own file: latest.json stays one whole run
        path = save(rows, RESULTS / f"partial-{'-'.join(args.only)}.json")
    else:
        path = save(rows)
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
