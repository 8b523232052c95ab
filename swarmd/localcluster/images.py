"""Images made locally from busybox-static: `busybox:latest` and `hello-world:latest`.

Each image is built once into a `docker save` archive and loaded into every engine, so the
same image has the same ID on every node (compose's config-hash includes the image ID).
"""
from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import time
from pathlib import Path

import docker

HELLO_TEXT = """
Hello from Docker!
This message shows that your installation appears to be working correctly.

To generate this message, Docker took the following steps:
 1. The Docker client contacted the Docker daemon.
 2. The Docker daemon created a new container from the "hello-world" image.
 3. The Docker daemon streamed this output to the Docker client, which sent it
    to your terminal.
"""


def _busybox_binary() -> Path:
    for cand in ("/bin/busybox", "/usr/bin/busybox"):
        p = Path(cand)
        if p.exists() and b"ld-linux" not in p.read_bytes()[:4096]:  # no ELF interpreter: static
            return p
    raise RuntimeError("busybox-static is not installed (apt-get install busybox-static)")


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.mtime = 0
    tar.addfile(info)


def _add_link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    info.mtime = 0
    tar.addfile(info)


def busybox_rootfs(applets: bool = True) -> bytes:
    """A tar of a rootfs: /bin/busybox, applet symlinks, /etc/passwd, /tmp."""
    binary = _busybox_binary()
    names = subprocess.run([str(binary), "--list"], capture_output=True, text=True, check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "etc", "tmp", "root", "proc", "sys", "dev", "var", "var/www"):
            _add_dir(tar, d, 0o1777 if d == "tmp" else 0o755)
        _add_file(tar, "bin/busybox", binary.read_bytes())
        for name in names if applets else ["sh"]:
            if name != "busybox":
                _add_link(tar, f"bin/{name}", "busybox")
        _add_file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n", 0o644)
        _add_file(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644)
    return buf.getvalue()


def hello_rootfs() -> bytes:
    buf = io.BytesIO(busybox_rootfs(applets=False))
    out = io.BytesIO()
    with tarfile.open(fileobj=buf) as src, tarfile.open(fileobj=out, mode="w") as tar:
        for m in src.getmembers():
            tar.addfile(m, src.extractfile(m) if m.isfile() else None)
        script = "#!/bin/sh\ncat <<'EOF'\n" + HELLO_TEXT + "EOF\n"
        _add_file(tar, "hello", script.encode())
    return out.getvalue()


IMAGES = {
    "busybox:latest": (busybox_rootfs, ['CMD ["/bin/sh"]', "ENV PATH=/bin"]),
    "hello-world:latest": (hello_rootfs, ['CMD ["/hello"]', "ENV PATH=/bin"]),
}


def image_archive(cache_dir: Path, builder_url: str) -> Path:
    """A `docker save` archive holding every image in IMAGES, built once per busybox binary."""
    key = hashlib.sha256(_busybox_binary().read_bytes() + repr(sorted(IMAGES)).encode()).hexdigest()[:16]
    cache_dir.mkdir(parents=True, exist_ok=True)
    archive = cache_dir / f"images-{key}.tar"
    if archive.exists():
        return archive
    client = docker.DockerClient(base_url=builder_url, version="1.41", timeout=120)
    try:
        for ref, (make_rootfs, changes) in IMAGES.items():
            repo, tag = ref.split(":")
            client.api.import_image_from_data(make_rootfs(), repository=repo, tag=tag, changes=changes)
        tmp = archive.with_suffix(f".tmp{time.monotonic_ns()}")
        with open(tmp, "wb") as f:
            resp = client.api._get(client.api._url("/images/get"), params={"names": list(IMAGES)}, stream=True)
            client.api._raise_for_status(resp)
            for chunk in resp.iter_content(1 << 20):
                f.write(chunk)
        tmp.rename(archive)
    finally:
        client.close()
    return archive


def load_images(archive: Path, engine_url: str) -> None:
    client = docker.DockerClient(base_url=engine_url, version="1.41", timeout=120)
    try:
        with open(archive, "rb") as f:
            for line in client.api.load_image(f.read()):  # a stream: consume it to the end
                if isinstance(line, dict) and line.get("error"):
                    raise RuntimeError(f"loading {archive} failed: {line['error']}")
    finally:
        client.close()

