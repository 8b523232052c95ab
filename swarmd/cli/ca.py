"""`swarm ca`: make a cluster CA and sign certificates for nodes, managers and clients.

    swarm ca init  --dir ./pki                                   # ca.pem, ca-key.pem
    swarm ca issue --dir ./pki --kind node --name node1 --host 10.0.0.5 --out ./pki/node1
    swarm ca issue --dir ./pki --kind client --name alice --out ~/.docker
    swarm ca digest --dir ./pki                                  # what a TLS join token names
    swarm ca rotate --dir ./pki [--status]                       # replace the CA of `swarm discovery --ca-dir`

`issue` writes ca.pem, cert.pem and key.pem: the layout of DOCKER_CERT_PATH, and what the
daemons' --tlscacert/--tlscert/--tlskey point at.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from swarmd.common.config import ConfigError, add_flag


@dataclass(frozen=True)
class CaRequest:
    """One `swarm ca` action and what it needs; `action` is init_ca, issue_cert or print_digest."""

    action: object
    dir: Path
    name: str = ""
    kind: str = "node"
    hosts: tuple[str, ...] | None = None
    out: Path | None = None
    force: bool = False


def init_ca(req: CaRequest) -> int:
    from swarmd.common import pki
    ca = pki.create_ca(req.name)
    pki.write_ca(req.dir, ca, force=req.force)
    print(f"CA written to {req.dir}/ca.pem (key {req.dir}/ca-key.pem, keep it private)")
    print(f"sha256:{pki.ca_digest(ca.cert_pem)}")
    return 0


def issue_cert(req: CaRequest) -> int:
    """During a CA rotation the incoming CA signs (the certificate outlives the rotation) and ca.pem
    holds every root of the phase (the manager serves from either CA until the old one is dropped)."""
    from swarmd.common import ca_rotation, pki
    state = ca_rotation.read(req.dir)
    issued = pki.issue(state.ca("new"), req.name, kind=req.kind, hosts=list(req.hosts) if req.hosts else None)
    out = req.out or req.dir / req.name
    pki.write_issued(out, state.bundle_pem, issued)
    print(f"{req.kind} certificate for {req.name} written to {out} (ca.pem, cert.pem, key.pem)")
    return 0


def print_digest(req: CaRequest) -> int:
    from swarmd.common import pki
    try:
        data = (req.dir / pki.CA_CERT).read_bytes()
    except OSError as exc:
        raise pki.PKIError(f"cannot read {exc.filename}: {exc.strerror or exc}") from None
    print(pki.ca_digest(data))
    return 0


def rotate_ca(req: CaRequest) -> int:
    from swarmd.common import ca_rotation, pki
    state = ca_rotation.start(req.dir, req.name or "swarmd CA")
    print(f"CA rotation started in {req.dir}: the new CA is {req.dir}/{ca_rotation.NEXT_DIR}/ca.pem "
          f"(sha256:{pki.ca_digest(state.new.cert_pem)})")
    print("the discovery daemons move every node through the phases trust, sign, drop; "
          f"`swarm ca rotate --dir {req.dir} --status` shows where it is")
    return 0


def rotation_status(req: CaRequest) -> int:
    from swarmd.common import ca_rotation
    state = ca_rotation.read(req.dir)
    print(f"phase {state.phase}")
    for which, digest in state.digests.items():
        print(f"{which} CA sha256:{digest}")
    print(f"join tokens name sha256:{state.digests['new' if ca_rotation.plan(state.phase).serving == 'new' else 'old']}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("ca", help="create a cluster CA and issue TLS certificates")
    verbs = p.add_subparsers(dest="ca_verb", metavar="ACTION", required=True)

    init = verbs.add_parser("init", help="create a CA (ca.pem, ca-key.pem)")
    add_flag(init, "--dir", default=".", help="where the CA files go")
    add_flag(init, "--name", default="swarmd CA", help="the CA's common name")
    add_flag(init, "--force", action="store_true", default=False, help="replace an existing CA")
    init.set_defaults(ca_func=init_ca, verb_prog=init.prog)    # refusals name the action, as argparse's do

    issue = verbs.add_parser("issue", help="sign a certificate for a node, manager or client")
    add_flag(issue, "--dir", default=".", help="the CA's directory")
    add_flag(issue, "--name", required=True, help="common name (node or user name)")
    add_flag(issue, "--kind", default="node", choices=["node", "manager", "client"],
             help="node/manager: serves and calls; client: docker CLI user")
    add_flag(issue, "--host", action="append", default=None,
             help="DNS name or IP the daemon is reached at (repeatable; default: loopback)")
    add_flag(issue, "--out", default=None, help="output directory (default: DIR/NAME)")
    issue.set_defaults(ca_func=issue_cert, verb_prog=issue.prog)    # refusals name the action, as argparse's do

    digest = verbs.add_parser("digest", help="print the CA's SHA-256 digest")
    add_flag(digest, "--dir", default=".", help="the CA's directory")
    digest.set_defaults(ca_func=print_digest, verb_prog=digest.prog)    # refusals name the action, as argparse's do

    rotate = verbs.add_parser("rotate", help="replace the CA of discovery daemons run with --ca-dir, without downtime")
    add_flag(rotate, "--dir", default=".", help="the CA's directory (the discovery daemons' --ca-dir)")
    add_flag(rotate, "--name", default="swarmd CA", help="the new CA's common name")
    add_flag(rotate, "--status", action="store_true", default=False, help="show the rotation's phase and stop")
    rotate.set_defaults(ca_func=rotate_ca, verb_prog=rotate.prog)    # refusals name the action, as argparse's do

    p.set_defaults(configure=configure, func=run)


def configure(args) -> CaRequest:
    name = getattr(args, "name", "")
    action = rotation_status if args.ca_func is rotate_ca and getattr(args, "status", False) else args.ca_func
    if action not in (print_digest, rotation_status) and not str(name).strip():
        raise ConfigError("--name: a certificate needs a common name")
    hosts = getattr(args, "host", None)
    if hosts is not None and not all(h.strip() for h in hosts):
        raise ConfigError("--host: an empty name or address")
    out = getattr(args, "out", None)
    return CaRequest(action=action, dir=Path(args.dir), name=name, kind=getattr(args, "kind", "node"),
                     hosts=tuple(hosts) if hosts is not None else None, out=Path(out) if out else None,
                     force=bool(getattr(args, "force", False)))


def run(req: CaRequest) -> int:
    from swarmd.common.ca_rotation import RotationError
    from swarmd.common.pki import PKIError
    try:
        return req.action(req)
    except (PKIError, RotationError) as exc:
        print(f"swarm ca: {exc}", file=sys.stderr)
        return 1
