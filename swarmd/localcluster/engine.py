"""A real `dockerd` running beside others: own socket, data/exec roots, bridge and host IP."""
from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import docker

from swarmd.localcluster.processes import Daemon, DaemonExited, pid_alive, stop_pid, wait_until


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path) + "/"
    out = []
    with open("/proc/self/mounts") as f:
        for line in f:
            mnt = line.split()[1].encode().decode("unicode_escape")
            if mnt.startswith(prefix):
                out.append(mnt)
    return sorted(out, key=len, reverse=True)


def _pids_referencing(path: Path) -> list[int]:
    """Pids whose command line names `path` (the shims and containerd of one engine)."""
    needle = str(path).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


# Where dockerd keeps its networks (a bolt database under the data root), and the key each
# network is stored under: read as bytes, so an engine that died still names its networks.
NETWORK_DB = Path("data/network/files/local-kv.db")
_NETWORK_KEY = re.compile(rb"docker/network/v1\.0/network/([0-9a-f]{64})")
_BRIDGE_NAME = re.compile(rb'"BridgeName":"([^"/\\]{1,15})"')    # the bridge driver's stored config
PREDEFINED_NETWORKS = {"bridge", "host", "none"}


def bridges_in_data(root: Path) -> set[str]:
    """Names of the bridges of the networks an engine rooted at `root` had stored, alive or not:
    `br-<network id>` and any name a network asked for."""
    try:
        raw = (root / NETWORK_DB).read_bytes()
    except OSError:
        return set()
    return ({f"br-{m.decode()[:12]}" for m in _NETWORK_KEY.findall(raw)}
            | {m.decode() for m in _BRIDGE_NAME.findall(raw)})


def _pids_in_containers_under(root: Path) -> list[int]:
    """Pids whose root filesystem lies under `root`: the processes of an engine's containers,
    which outlive a dockerd and shims that were killed."""
    prefix = str(root) + "/"
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for line in (entry / "mountinfo").read_text().splitlines():
                fields = line.split()
                if fields[4] == "/" and prefix in line:
                    pids.append(int(entry.name))
                    break
        except (OSError, IndexError):
            continue
    return pids


def host_bridges() -> dict[str, list[ipaddress.IPv4Interface]]:
    """Every bridge in this network namespace, with its IPv4 addresses."""
    out = _run("ip", "-j", "addr", "show", "type", "bridge", check=False).stdout
    bridges = {}
    for link in json.loads(out or "[]"):
        if "ifname" not in link:
            continue
        bridges[link["ifname"]] = [
            ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}")
            for a in link.get("addr_info", []) if a.get("family") == "inet"
        ]
    return bridges


def bridges_of_engine(bridge_names: set[str], address_pool: str | None,
                      bridges: dict[str, list[ipaddress.IPv4Interface]]) -> list[str]:
    """The host bridges that belong to one engine's networks, and nobody else's: the names its
    networks had (`br-<network id>` or asked for), and any `br-*` bridge addressed inside its
    own address pool."""
    wanted = set(bridge_names)
    pool = ipaddress.IPv4Network(address_pool) if address_pool else None
    found = []
    for name, addrs in bridges.items():
        if name in wanted or (pool and name.startswith("br-")
                              and any(a.ip in pool for a in addrs)):
            found.append(name)
    return sorted(found)


class DockerEngine:
    """One engine of the lab. `index` picks its bridge, subnet and published-port address."""

    def __init__(self, root: Path, name: str, bridge: str, bridge_cidr: str, host_ip: str,
                 address_pool: str | None = None, labels: dict[str, str] | None = None):
        self.root = Path(root)
        self.address_pool = address_pool
        self.name = name
        self.bridge = bridge
        self.bridge_cidr = bridge_cidr
        self.host_ip = host_ip
        self.labels = labels or {}
        self.inherited_fds: tuple[int, ...] = ()   # what its daemon inherits (a lab's slot lock)
        self.daemon: Daemon | None = None

    def spec(self) -> dict:
        """What rebuilds this engine's description in another process (JSON-friendly)."""
        return {"root": str(self.root), "name": self.name, "bridge": self.bridge,
                "bridge_cidr": self.bridge_cidr, "host_ip": self.host_ip,
                "address_pool": self.address_pool, "labels": self.labels}

    @property
    def socket_path(self) -> Path:
        return self.root / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pidfile(self) -> Path:
        return self.root / "docker.pid"

    def client(self, timeout: int = 60) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, version="1.41", timeout=timeout)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> "DockerEngine":
        self.clean_leftovers()
        self.root.mkdir(parents=True, exist_ok=True)
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", self.bridge_cidr, "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        etc = self.root / "etc-docker"
        etc.mkdir(exist_ok=True)
        Path("/etc/docker").mkdir(exist_ok=True)  # the bind-mount target
        # A private mount namespace gives the engine its own /etc/docker (and so its own
        # key.json and engine ID); its container mounts live and die with that namespace.
        wrapper = [
            "unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", 'mount --bind "$0" /etc/docker && exec "$@"', str(etc),
        ]
        argv = wrapper + [
            shutil.which("dockerd") or "dockerd",
            "--host", self.url,
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),
            "--pidfile", str(self.pidfile),
            "--bridge", self.bridge,
            "--iptables=false",
            "--ip", self.host_ip,
            "--storage-driver", "overlay2",
            "--config-file", str(self._write_config()),
        ]
        if self.address_pool:
            argv += ["--default-address-pool", f"base={self.address_pool},size=24"]
        for k, v in self.labels.items():
            argv += ["--label", f"{k}={v}"]
        self._argv = argv
        self.daemon = Daemon(self.name, argv, self.root / "dockerd.log",
                             pass_fds=self.inherited_fds).start()
        wait_until(self._ping, timeout, f"dockerd {self.name} on {self.socket_path}", interval=0.1)
        return self

    def restart(self, down_for: float = 0.0, timeout: float = 60) -> "DockerEngine":
        """Stops dockerd (its containers stop with it) and starts it again on the same data, as a
        host's engine restart does; `down_for` seconds pass in between."""
        self.daemon.stop(timeout=20)
        if down_for:
            time.sleep(down_for)
        self.daemon = Daemon(self.name, self._argv, self.root / "dockerd.log",
                             pass_fds=self.inherited_fds).start()
        wait_until(self._ping, timeout, f"dockerd {self.name} to come back", interval=0.1)
        return self

    def _write_config(self) -> Path:
        path = self.root / "daemon.json"
        path.write_text("{}\n")
        return path

    def _ping(self) -> bool:
        if not self.daemon or not self.daemon.running():
            raise DaemonExited(f"dockerd {self.name} exited:\n{self.daemon.log_tail() if self.daemon else ''}")
        if not self.socket_path.exists():
            return False
        c = self.client(timeout=2)
        try:
            return c.ping()
        finally:
            c.close()

    def remove_all_containers(self) -> None:
        c = self.client(timeout=30)
        try:
            for ctr in c.api.containers(all=True):
                try:
                    c.api.remove_container(ctr["Id"], force=True, v=True)
                except docker.errors.APIError:
                    pass
        finally:
            c.close()

    def remove_user_networks(self) -> set[str]:
        """Removes every network but the predefined ones; returns the names of their bridges,
        so a bridge the engine fails to delete can still be found."""
        names = set()
        c = self.client(timeout=30)
        try:
            for net in c.api.networks():
                if net["Name"] in PREDEFINED_NETWORKS:
                    continue
                named = (net.get("Options") or {}).get("com.docker.network.bridge.name")
                names.add(named or f"br-{net['Id'][:12]}")
                try:
                    c.api.remove_network(net["Id"])
                except docker.errors.APIError:
                    pass  # still in use or already gone: its bridge is deleted after the stop
        finally:
            c.close()
        return names

    def stop(self) -> None:
        bridge_names: set[str] = set()
        if self.daemon and self.daemon.running():
            try:
                self.remove_all_containers()
                bridge_names = self.remove_user_networks()
            except Exception:
                pass  # the engine may already be unhealthy; the steps below still clean up
            self.daemon.stop(timeout=20)
        self.clean_leftovers(bridge_names)

    def _delete_network_bridges(self, bridge_names: set[str]) -> list[str]:
        """Deletes the host bridges of this engine's networks (and so their routes): dockerd
        leaves them behind when it stops or dies with networks defined."""
        names = bridge_names | bridges_in_data(self.root)
        doomed = bridges_of_engine(names, self.address_pool, host_bridges())
        for name in doomed:
            _run("ip", "link", "del", name, check=False)
        return doomed

    def clean_leftovers(self, bridge_names: set[str] = frozenset()) -> None:
        """Stops what a crashed earlier run left under this root, by pid, deletes the bridges of
        its networks and removes it."""
        if self.pidfile.exists():
            try:
                pid = int(self.pidfile.read_text().strip() or 0)
            except ValueError:
                pid = 0
            if pid and pid_alive(pid) and str(self.pidfile).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                stop_pid(pid, timeout=20)
        if self.root.exists():
            for pid in _pids_referencing(self.root):
                stop_pid(pid, timeout=5)
            for pid in _pids_in_containers_under(self.root):
                stop_pid(pid, timeout=5, sig=signal.SIGKILL)
            for mnt in _mounts_under(self.root):
                _run("umount", "-l", mnt, check=False)
        self._delete_network_bridges(set(bridge_names))
        if self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)
        if _run("ip", "link", "show", self.bridge, check=False).returncode == 0:
            _run("ip", "link", "del", self.bridge, check=False)
