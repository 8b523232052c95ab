"""`swarm ca`: make a cluster CA and sign certificates for nodes, managers and clients.

    swarm ca init  --dir ./pki                                   # ca.pem, ca-key.pem
    swarm ca issue --dir ./pki --kind node --name node1 --host 10.0.0.5 --out ./pki/node1
    swarm ca issue --dir ./pki --kind client --name alice --out ~/.docker
    swarm ca digest --dir ./pki                                  # what a TLS join token names

`issue` writes ca.pem, cert.pem and key.pem: the layout of DOCKER_CERT_PATH, and what the
daemons' --tlscacert/--tlscert/--tlskey point at.
"""
from __future__ import annotations

import sys
from pathlib import Path

from swarmd.config import add_flag


def _init(args) -> int:
    from swarmd import pki
    ca = pki.create_ca(args.name)
    pki.write_ca(Path(args.dir), ca, force=args.force)
    print(f"CA written to {args.dir}/ca.pem (key {args.dir}/ca-key.pem, keep it private)")
    print(f"sha256:{pki.ca_digest(ca.cert_pem)}")
    return 0


def _issue(args) -> int:
    from swarmd import pki
    ca = pki.read_ca(Path(args.dir))
    issued = pki.issue(ca, args.name, kind=args.kind, hosts=args.host)
    out = Path(args.out or Path(args.dir) / args.name)
    pki.write_issued(out, ca.cert_pem, issued)
    print(f"{args.kind} certificate for {args.name} written to {out} (ca.pem, cert.pem, key.pem)")
    return 0


def _digest(args) -> int:
    from swarmd import pki
    try:
        data = (Path(args.dir) / pki.CA_CERT).read_bytes()
    except OSError as exc:
        raise pki.PKIError(f"cannot read {exc.filename}: {exc.strerror or exc}") from None
    print(pki.ca_digest(data))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("ca", help="create a cluster CA and issue TLS certificates")
    verbs = p.add_subparsers(dest="ca_verb", metavar="ACTION", required=True)

    init = verbs.add_parser("init", help="create a CA (ca.pem, ca-key.pem)")
    add_flag(init, "--dir", default=".", help="where the CA files go")
    init.add_argument("--name", default="swarmd CA", help="the CA's common name")
    init.add_argument("--force", action="store_true", help="replace an existing CA")
    init.set_defaults(ca_func=_init)

    issue = verbs.add_parser("issue", help="sign a certificate for a node, manager or client")
    add_flag(issue, "--dir", default=".", help="the CA's directory")
    issue.add_argument("--name", required=True, help="common name (node or user name)")
    issue.add_argument("--kind", default="node", choices=["node", "manager", "client"],
                       help="node/manager: serves and calls; client: docker CLI user")
    issue.add_argument("--host", action="append", default=None,
                       help="DNS name or IP the daemon is reached at (repeatable; default: loopback)")
    issue.add_argument("--out", default=None, help="output directory (default: DIR/NAME)")
    issue.set_defaults(ca_func=_issue)

    digest = verbs.add_parser("digest", help="print the CA's SHA-256 digest")
    add_flag(digest, "--dir", default=".", help="the CA's directory")
    digest.set_defaults(ca_func=_digest)

    def run(args) -> int:
        from swarmd.pki import PKIError
        try:
            return args.ca_func(args)
        except PKIError as exc:
            print(f"swarm ca: {exc}", file=sys.stderr)
            return 1

    p.set_defaults(func=run)
