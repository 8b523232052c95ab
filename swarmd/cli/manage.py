"""`swarm manage`: serve the Docker API for the whole cluster (flags -> manager.config.ManagerConfig
-> manager.daemon)."""
from __future__ import annotations

from swarmd.common.config import add_flag, parse_duration
from swarmd.common.etcd_tls import add_etcd_tls_flags
from swarmd.common.tls import add_tls_flags


def add_parser(sub) -> None:
    p = sub.add_parser("manage", help="run the manager (Docker API frontend and scheduler)")
    add_flag(p, "--host", "-H", action="append", default=None,
             help="address to serve the Docker API on: tcp://HOST:PORT or unix:///path (repeatable)")
    add_flag(p, "--strategy", default="spread", choices=["spread", "binpack", "random"],
             help="placement strategy")
    add_flag(p, "--filter", action="append", default=None,
             help="scheduler filter to enable (repeatable; default: all)")
    add_flag(p, "--discovery-addr", default=None, help="discovery daemon HOST:PORT (for token://)")
    add_flag(p, "--state-dir", default="/var/lib/swarmd/manager",
             help="where the manager's issued certificate is kept (join tokens of `swarm create --ca-dir`)")
    add_flag(p, "--api-rate-limit", type=float, default=0.0,
             help="requests a second each client address may send (burst: twice that); 0: no limit")
    add_flag(p, "--insecure-tcp", action="store_true", default=False,
             help="allow plain TCP on a non-loopback address")
    add_flag(p, "--metrics-addr", default=None, help="HOST:PORT to serve Prometheus metrics on (/metrics)")
    add_flag(p, "--ui-addr", default=None,
             help="HOST:PORT to serve the read-only web view of the cluster on (off by default; loopback "
                  "unless --tlsverify)")
    add_flag(p, "--replication", action="store_true", default=False,
             help="run with other managers of the same cluster: one primary, elected in etcd; replicas forward")
    add_flag(p, "--advertise", default=None,
             help="HOST:PORT other managers reach this API at (default: the one specific -H tcp address)")
    add_flag(p, "--replication-ttl", type=parse_duration, default=parse_duration("3s"),
             help="lease of the primary's election key: a lost primary is replaced within about this long")
    add_flag(p, "--cluster-opt", action="append", default=None,
             help="KEY=VALUE: swarm.overcommit=RATIO (share more than a node's CPUs and memory that may be "
                  "reserved, default 0) or swarm.createretry=N (other nodes a failed create is tried on, "
                  "default 0) (repeatable)")
    # classic swarm's engine-polling flags: checked as classic did and accepted so its command lines
    # run unchanged; the manager follows each agent's event stream instead of polling engines, and
    # agents heartbeat on their own, so each given only logs a notice
    no_effect = "classic swarm's; accepted and checked, no effect here: a notice is logged"
    add_flag(p, "--engine-refresh-min-interval", type=parse_duration, default=None, help=no_effect)
    add_flag(p, "--engine-refresh-max-interval", type=parse_duration, default=None, help=no_effect)
    add_flag(p, "--engine-failure-retry", type=int, default=None, help=no_effect)
    add_flag(p, "--heartbeat", type=parse_duration, default=None,
             help=f"{no_effect} (agents heartbeat: `swarm join --heartbeat`)")
    add_tls_flags(p)
    add_etcd_tls_flags(p, "etcd:// discovery URLs")
    p.add_argument("discovery_url", help="token://TOKEN, etcd://HOST:PORT/PREFIX, nodes://ADDR,… or file:///path")

    p.set_defaults(configure=configure, func=run)


def configure(args):
    from swarmd.manager.config import ManagerConfig
    return ManagerConfig.from_args(args)


def run(cfg) -> int:
    from swarmd.common import logs
    from swarmd.manager.daemon import main
    log = logs.get("manager")
    for flag in cfg.classic_flags:
        log.warning("%s is classic swarm's engine-polling setting and has no effect: the manager follows "
                    "each agent's event stream, and agents heartbeat on their own (swarm join --heartbeat)", flag)
    return main(cfg)
