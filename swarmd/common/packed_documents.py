"""Inspect documents packed small: JSON compressed against a preset dictionary of the document's shape.

The manager keeps each container's inspect document packed (manager.container_records), and an
agent can send a node's documents already packed (SyncNode's `packing`): the manager then
unpacks each (about half what packing costs) instead of packing it, and the documents cross the
wire at a tenth of their size. Both sides must pack with the same dictionary: `DICTIONARY_ID`
names it, and an agent packs only for a manager that asks with its ID.
"""
from __future__ import annotations

import hashlib
import json
import zlib

# The shape of an engine's inspect document (keys, and the values most containers share), as
# dockerd writes it (compact) and as Python's json module does (the hollow engine): deflate
# refers back into it, so a document costs little more than what is its own (IDs, names, times).
_SHAPE = {
    "Id": "", "Created": "2026-01-01T00:00:00.000000000Z", "Path": "sh", "Args": ["-c"],
    "State": {"Status": "running", "Running": True, "Paused": False, "Restarting": False, "OOMKilled": False,
              "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "", "StartedAt": "2026-01-01T00:00:00.000000000Z",
              "FinishedAt": "0001-01-01T00:00:00Z"},
    "Image": "sha256:", "ResolvConfPath": "/var/lib/docker/containers//resolv.conf",
    "HostnamePath": "/var/lib/docker/containers//hostname", "HostsPath": "/var/lib/docker/containers//hosts",
    "LogPath": "/var/lib/docker/containers//-json.log", "Name": "/", "RestartCount": 0, "Driver": "overlay2",
    "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "docker-default", "ExecIDs": None,
    "HostConfig": {
        "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
        "NetworkMode": "default", "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None, "CapAdd": None, "CapDrop": None,
        "CgroupnsMode": "private", "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": None,
        "GroupAdd": None, "IpcMode": "private", "Cgroup": "", "Links": None, "OomScoreAdj": 0, "PidMode": "",
        "Privileged": False, "PublishAllPorts": False, "ReadonlyRootfs": False, "SecurityOpt": None,
        "UTSMode": "", "UsernsMode": "", "ShmSize": 67108864, "Runtime": "runc", "ConsoleSize": [0, 0],
        "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0,
        "BlkioWeightDevice": [], "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None,
        "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None, "CpuPeriod": 0, "CpuQuota": 0,
        "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": [],
        "DeviceCgroupRules": None, "DeviceRequests": None, "KernelMemory": 0, "KernelMemoryTCP": 0,
        "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": None, "OomKillDisable": False,
        "PidsLimit": None, "Ulimits": None, "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0, "MaskedPaths": ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                                                 "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                                                 "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
        "ReadonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]},
    "GraphDriver": {"Data": {"LowerDir": "/var/lib/docker/overlay2/-init/diff:/var/lib/docker/overlay2//diff",
                             "MergedDir": "/var/lib/docker/overlay2//merged",
                             "UpperDir": "/var/lib/docker/overlay2//diff",
                             "WorkDir": "/var/lib/docker/overlay2//work"}, "Name": "overlay2"},
    "Mounts": [{"Type": "volume", "Name": "", "Source": "/var/lib/docker/volumes//_data", "Destination": "/data",
                "Driver": "local", "Mode": "", "RW": True, "Propagation": ""}],
    "Config": {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
               "AttachStderr": False, "ExposedPorts": {"80/tcp": {}}, "Tty": False, "OpenStdin": False,
               "StdinOnce": False, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
               "Cmd": ["sleep", "3600"], "Image": "busybox", "Volumes": None, "WorkingDir": "",
               "Entrypoint": None, "OnBuild": None,
               "Labels": {"com.docker.swarm.id": "", "com.docker.compose.project": "", "com.docker.compose.service": "",
                          "com.docker.compose.container-number": "1", "app": "", "tier": ""}},
    "NetworkSettings": {"Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
                        "LinkLocalIPv6PrefixLen": 0, "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": ""}]},
                        "SandboxKey": "/var/run/docker/netns/", "SecondaryIPAddresses": None,
                        "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "172.17.0.1",
                        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "172.17.0.",
                        "IPPrefixLen": 16, "IPv6Gateway": "", "MacAddress": "02:42:ac:11:00:",
                        "Networks": {"bridge": {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": "",
                                                "EndpointID": "", "Gateway": "172.17.0.1", "IPAddress": "172.17.0.",
                                                "IPPrefixLen": 16, "IPv6Gateway": "", "GlobalIPv6Address": "",
                                                "GlobalIPv6PrefixLen": 0, "MacAddress": "02:42:ac:11:00:",
                                                "DriverOpts": None}}},
}
_ZDICT = json.dumps(_SHAPE).encode() + json.dumps(_SHAPE, separators=(",", ":")).encode()
PRESET_DICTIONARY = _ZDICT      # what any zlib reader of a packed document is given


# Level 3 with the preset dictionary: about as fast as level 1 on these documents and half the
# bytes (deflate's longer match search finds the dictionary's runs). Each document starts from a
# copy of one primed compressor (setting the dictionary anew cost as much as compressing the
# document); a 16 KiB window (the dictionary's 8 KiB and a document) and memLevel 6 make that
# copy a third of the default's (docs/benchmarks.md, "Sync cost per node"). Any zlib reader
# with the dictionary reads the stream: `unpack_document` reads records packed before.
PACK_LEVEL, PACK_WBITS, PACK_MEMLEVEL = 3, 14, 6
_PACKER = zlib.compressobj(PACK_LEVEL, zlib.DEFLATED, PACK_WBITS, PACK_MEMLEVEL, zdict=_ZDICT)


def pack_document(data: bytes) -> bytes:
    """A document's JSON, compressed against the preset dictionary (a zlib stream with it)."""
    packer = _PACKER.copy()
    return packer.compress(data) + packer.flush()


def unpack_document(packed: bytes) -> bytes:
    """The document's JSON again; zlib.error when `packed` is not one whole stream against this
    dictionary (cut short, followed by more bytes, or not zlib at all)."""
    unpacker = zlib.decompressobj(zdict=_ZDICT)
    data = unpacker.decompress(packed) + unpacker.flush()
    if not unpacker.eof or unpacker.unused_data:
        raise zlib.error("not one whole packed document")
    return data


# what a manager asks SyncNode to pack with, and an agent packs for only when it is its own
DICTIONARY_ID = "zlib-" + hashlib.sha256(_ZDICT).hexdigest()[:16]
