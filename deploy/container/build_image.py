"""Builds the swarmd container image without any registry.

    python deploy/container/build_image.py [--engine unix:///var/run/docker.sock] [--tag swarmd:dev]

1. The base image `swarmd-base:<key>` is this machine's own Python (the interpreter running this
   script, relocated to /opt/python), the Python packages swarmd needs at run time (taken from
   the running environment, by distribution metadata), and the shared libraries all of that
   links against (found with `ldd`). Its root filesystem is cached as a tar under
   /tmp/swarmd-local/image-cache and loaded into the engine with `docker import`.
2. deploy/container/Dockerfile is built on top of it with a build context holding only the
   swarmd package, laid out as it installs (the generated gRPC stubs in proto/swarm/v1 included:
   run `make venv` first).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import io
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = Path(__file__).resolve().parent / "Dockerfile"
CACHE_DIR = Path(os.environ.get("SWARMD_LOCAL_ROOT", "/tmp/swarmd-local")) / "image-cache"
# tree folder -> where it lives in the one installed package (as setup.py maps it)
PACKAGE_DIRS = {"swarmd": "swarmd", "manager": "swarmd/manager", "agent": "swarmd/agent",
                "discovery": "swarmd/discovery", "proto": "swarmd/proto"}
PYTHON_HOME = "/opt/python"          # where the interpreter lives in the image
STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages",
               "__pycache__"}


# -- what goes into the base image -------------------------------------------------------------

def _req_name(req: str) -> str | None:
    """'grpcio>=1.60' -> 'grpcio'; None for extras-only or environment-excluded requirements."""
    if "extra ==" in req.replace('"', "'").replace("  ", " "):
        return None
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    return m.group(1) if m else None


def runtime_distributions() -> list[md.Distribution]:
    """The installed distributions swarmd needs at run time (pyproject.toml's dependencies, and
    theirs, transitively)."""
    seen: dict[str, md.Distribution] = {}
    todo = list(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    roots = {_req_name(r) for r in todo}
    while todo:
        name = _req_name(todo.pop())
        if not name:
            continue
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            if name in roots:
                raise RuntimeError(f"{name} is not installed: run `make venv`") from None
            continue          # an optional or platform-specific dependency that is not installed
        seen[key] = dist
        todo.extend(dist.requires or [])
    return sorted(seen.values(), key=lambda d: d.metadata["Name"].lower())


def _dist_files(dist: md.Distribution) -> list[tuple[Path, str]]:
    """(file on disk, path relative to site-packages) for every file the distribution installed."""
    out = []
    for f in dist.files or []:
        rel = str(f)
        if rel.startswith("..") or "__pycache__" in rel or rel.endswith(".pyc"):
            continue
        path = Path(f.locate())
        if path.is_file():
            out.append((path, rel))
    return out


def _stdlib_files(stdlib: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(stdlib):
        rel = Path(dirpath).relative_to(stdlib)
        dirnames[:] = [d for d in dirnames if not (rel == Path(".") and d in STDLIB_SKIP)
                       and d != "__pycache__" and not d.startswith("config-")]
        out.extend(Path(dirpath) / f for f in filenames if not f.endswith(".pyc"))
    return out


def _shared_libs(binaries: list[Path]) -> set[Path]:
    """Every library the binaries load from outside the Python tree (ldd), plus the loader."""
    libs: set[Path] = set()
    for chunk in range(0, len(binaries), 50):
        proc = subprocess.run(["ldd", *map(str, binaries[chunk:chunk + 50])], capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
            if m:
                libs.add(Path(m.group(1)))
    return libs


def base_inputs() -> dict:
    prefix = Path(sys.base_prefix)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stdlib = Path(sysconfig.get_paths(vars={"installed_base": str(prefix), "base": str(prefix)})["stdlib"])
    dists = runtime_distributions()
    return {"prefix": prefix, "version": version, "stdlib": stdlib, "dists": dists,
            "key_text": f"{sys.version}|{prefix}|" + ",".join(f"{d.metadata['Name']}=={d.version}" for d in dists)}


def _add_file(tar: tarfile.TarFile, src: Path, name: str) -> None:
    info = tar.gettarinfo(str(src), arcname=name)
    if info.isdir():
        return
    if info.issym() or info.islnk():            # store what the link points at
        info = tar.gettarinfo(str(src.resolve()), arcname=name)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    with open(src, "rb") as f:
        tar.addfile(info, f)


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 0
    tar.addfile(info)


def _add_link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, 0
    tar.addfile(info)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def write_base_rootfs(path: Path, inputs: dict) -> None:
    prefix, version, stdlib = inputs["prefix"], inputs["version"], inputs["stdlib"]
    home = PYTHON_HOME.lstrip("/")
    python = prefix / "bin" / f"python{version}"
    libpython = [p for p in (prefix / "lib").glob(f"libpython{version}*.so*")]
    site = f"{home}/lib/python{version}/site-packages"
    binaries: list[Path] = [python, *libpython]
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with tarfile.open(tmp, "w") as tar:
        for d in ("bin", "etc", "tmp", "root", "proc", "sys", "dev", "var", "var/lib", "run", "opt",
                  home, f"{home}/bin", f"{home}/lib", f"{home}/lib/python{version}", site):
            _add_dir(tar, d, 0o1777 if d == "tmp" else 0o755)
        _add_file(tar, python, f"{home}/bin/python{version}")
        _add_link(tar, f"{home}/bin/python3", f"python{version}")
        _add_link(tar, f"{home}/bin/python", f"python{version}")
        for lib in libpython:
            _add_file(tar, lib, f"{home}/lib/{lib.name}")
        for f in _stdlib_files(stdlib):
            _add_file(tar, f, f"{home}/lib/python{version}/{f.relative_to(stdlib)}")
            if f.suffix == ".so":
                binaries.append(f)
        for dist in inputs["dists"]:
            for src, rel in _dist_files(dist):
                _add_file(tar, src, f"{site}/{rel}")
                if src.suffix == ".so" or ".so." in src.name:
                    binaries.append(src)
        for lib in sorted(_shared_libs(binaries)):
            if str(lib).startswith(str(prefix)) or not lib.exists():
                continue
            _add_file(tar, lib, str(lib).lstrip("/"))
        _add_bytes(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        _add_bytes(tar, "etc/group", b"root:x:0:\ndocker:x:999:\nnogroup:x:65534:\n")
        _add_bytes(tar, "etc/nsswitch.conf", b"hosts: files dns\n")
        _add_bytes(tar, "etc/hosts", b"127.0.0.1 localhost\n")
    tmp.rename(path)


def base_rootfs(cache_dir: Path = CACHE_DIR) -> tuple[Path, str]:
    """The cached rootfs tar of the base image and its tag (made on first use)."""
    inputs = base_inputs()
    key = hashlib.sha256(inputs["key_text"].encode()).hexdigest()[:16]
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"swarmd-base-{key}.tar"
    if not path.exists():
        write_base_rootfs(path, inputs)
    return path, f"swarmd-base:{key}"


# -- building the images -----------------------------------------------------------------------

def build_context(base_tag: str) -> bytes:
    """A tar: the Dockerfile and the swarmd packages (sources and generated stubs only)."""
    if not (REPO / "proto" / "swarm" / "v1" / "agent_pb2.py").exists():
        raise RuntimeError("the gRPC stubs are missing (proto/swarm/v1): run `make venv` first")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", DOCKERFILE.read_bytes())
        for folder, installed in PACKAGE_DIRS.items():
            for f in sorted((REPO / folder).rglob("*.py")):
                if "__pycache__" not in f.parts:
                    _add_file(tar, f, f"{installed}/{f.relative_to(REPO / folder)}")
    return buf.getvalue()


def build(engine_url: str, tag: str = "swarmd:dev") -> str:
    """Builds `tag` on the engine at `engine_url`; returns the image id."""
    import docker

    rootfs, base_tag = base_rootfs()
    client = docker.DockerClient(base_url=engine_url, version="1.41", timeout=600)
    try:
        try:
            client.images.get(base_tag)
        except docker.errors.ImageNotFound:
            repo, t = base_tag.split(":")
            client.api.import_image_from_file(str(rootfs), repository=repo, tag=t)
        client.api.tag(base_tag, "swarmd-base", "latest")
        out = []
        for chunk in client.api.build(fileobj=io.BytesIO(build_context(base_tag)), custom_context=True,
                                      tag=tag, rm=True, forcerm=True, decode=True,
                                      buildargs={"BASE": base_tag}):
            if "error" in chunk:
                raise RuntimeError(f"building {tag} failed: {chunk['error']}\n{''.join(out)}")
            out.append(chunk.get("stream", ""))
        return client.images.get(tag).id
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="build the swarmd image without a registry")
    parser.add_argument("--engine", default=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"))
    parser.add_argument("--tag", default="swarmd:dev")
    args = parser.parse_args(argv)
    started = time.monotonic()
    image = build(args.engine, args.tag)
    print(f"{args.tag} {image} ({time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
