"""Generates the Python gRPC stubs (`swarm/v1/*_pb2*.py`) from `proto/swarm/v1/*.proto`."""
from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"


def generate(out_dir: pathlib.Path = ROOT) -> list[pathlib.Path]:
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
    for pkg in (out_dir / "swarm", out_dir / "swarm" / "v1"):
        init = pkg / "__init__.py"
        if not init.exists():
            init.write_text('"""Generated gRPC stubs (build output, do not edit)."""\n')
    return protos


if __name__ == "__main__":
    for p in generate():
        print(f"generated stubs for {p.relative_to(ROOT)}", file=sys.stderr)
