"""Generates the Python gRPC stubs beside their sources: `proto/swarm/v1/*.proto` ->
`proto/swarm/v1/*_pb2*.py`, imported as `swarmd.proto.swarm.v1` (setup.py maps `proto/` into the
one installed package). protoc writes imports from the proto path (`from swarm.v1 import …`); they
are rewritten to the package's name, the one step the build takes after protoc."""
from __future__ import annotations

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
STUB_PACKAGE = "swarmd.proto"
_PROTOC_IMPORT = re.compile(r"^from swarm\.v1 import", re.M)


def generate(out_dir: pathlib.Path = PROTO_DIR) -> list[pathlib.Path]:
    from grpc_tools import protoc  # build-time dependency only
    import grpc_tools

    protos = sorted(PROTO_DIR.glob("swarm/v1/*.proto"))
    if not protos:
        raise SystemExit(f"no .proto files under {PROTO_DIR}")
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *map(str, protos),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for stub in (out_dir / "swarm" / "v1").glob("*_pb2*.py*"):
        text = stub.read_text()
        stub.write_text(_PROTOC_IMPORT.sub(f"from {STUB_PACKAGE}.swarm.v1 import", text))
    return protos


if __name__ == "__main__":
    for p in generate():
        print(f"generated stubs for {p.relative_to(ROOT)}", file=sys.stderr)
