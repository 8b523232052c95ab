"""`python -m bench [--quick] [--only NAME …]`: run the benchmarks, print the table, write JSON."""
from __future__ import annotations

import argparse
import importlib
import sys

from bench.report import RESULTS, Row, print_table, save

SUITES = ("placement", "proxy", "latency", "throughput", "scale", "failover", "ui", "memory", "httpd")
MODULES = {"httpd": "httpd_cost"}      # suite name -> module under bench/, where they differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--only", action="append", choices=SUITES, help="run only these suites")
    parser.add_argument("--ui-nodes", type=int, metavar="N",
                        help="hollow nodes for the ui suite (default 1,000; 30 containers each)")
    parser.add_argument("--scale-nodes", metavar="N,N,…",
                        type=lambda v: tuple(int(n) for n in v.split(",") if n.strip()),
                        help="fleet sizes of the scale suite's growth table (default 1000,2000,5000; "
                             "--quick 100,200; or SWARMD_BENCH_SCALE_NODES)")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    for name in args.only or SUITES:
        module = importlib.import_module(f"bench.{MODULES.get(name, name)}")
        print(f"# {name} …", file=sys.stderr, flush=True)
        # the ui and scale suites take fleet sizes: smaller fleets where the default takes too long
        extra = {"nodes": args.ui_nodes} if name == "ui" and args.ui_nodes else {}
        if name == "scale" and args.scale_nodes:
            extra = {"nodes": args.scale_nodes}
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
