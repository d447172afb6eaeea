"""Pod DNS without a DNS server: one hosts file per pod, bind-mounted over its /etc/hosts.

Why hosts files: torch's c10d and gloo resolve names in C++ through libc, so the names must
resolve at the libc level, and this machine has no cluster DNS. Each pod's processes run in a
private mount namespace where the pod's own file replaces /etc/hosts (see ``launcher``). The
file maps

- the pod's own hostname (and ``hostname.subdomain[.namespace.svc[.cluster.local]]``) to the
  pod's own 127.x address. This matters: gloo binds to whatever its hostname resolves to, and it
  must never be the machine's real interface address (loopback only);
- every other live pod of this node that has a hostname and a subdomain, by
  ``hostname.subdomain`` within its namespace and by ``hostname.subdomain.namespace.svc`` and
  the FQDN from everywhere. Like CoreDNS with ``publishNotReadyAddresses``, a pod is listed as
  soon as its address exists, and, unlike CoreDNS, whether a headless Service named after the
  subdomain exists is not checked.

Files are rewritten in place (same inode) because a bind mount pins the inode it was made on.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class PodAddress:
    """The DNS-relevant facts of one pod that has an address."""

    uid: str
    namespace: str
    hostname: str
    subdomain: str
    ip: str


def pod_hostname(pod: Mapping[str, Any]) -> str:
    """The hostname a kubelet gives the pod: spec.hostname, else the pod name cut to 63 chars."""
    spec = pod.get("spec") or {}
    return spec.get("hostname") or pod["metadata"]["name"][:63].rstrip("-.")


def pod_address(pod: Mapping[str, Any], ip: str) -> PodAddress:
    meta = pod["metadata"]
    return PodAddress(
        uid=meta["uid"],
        namespace=meta["namespace"],
        hostname=pod_hostname(pod),
        subdomain=(pod.get("spec") or {}).get("subdomain", "") or "",
        ip=ip,
    )


def _names(address: PodAddress, *, same_namespace: bool, domain: str) -> list[str]:
    if not address.subdomain:
        return []
    short = f"{address.hostname}.{address.subdomain}"
    svc = f"{short}.{address.namespace}.svc"
    names = [f"{svc}.{domain}", svc]
    if same_namespace:
        names.append(short)
    return names


def render_hosts(
    own: PodAddress,
    peers: Iterable[PodAddress],
    host_aliases: Iterable[Mapping[str, Any]] = (),
    domain: str = CLUSTER_DOMAIN,
) -> str:
    """The /etc/hosts content for ``own``; the first line naming a host wins in libc."""
    lines = [
        "# Kubernetes-managed hosts file (written by the local process node).",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "\t".join([own.ip, *_names(own, same_namespace=True, domain=domain), own.hostname]),
    ]
    others = sorted(
        (peer for peer in peers if peer.uid != own.uid),
        key=lambda peer: (peer.namespace != own.namespace, peer.namespace, peer.hostname, peer.uid),
    )
    for peer in others:
        names = _names(peer, same_namespace=peer.namespace == own.namespace, domain=domain)
        if names:
            lines.append("\t".join([peer.ip, *names]))
    aliases = list(host_aliases)
    if aliases:
        lines.append("# Entries added by HostAliases.")
        lines.extend("\t".join([alias["ip"], *alias.get("hostnames", [])]) for alias in aliases)
    return "\n".join(lines) + "\n"


def write_in_place(path: Path, content: str) -> None:
    """Replace the file's content keeping its inode (bind mounts of it stay valid)."""
    data = content.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)


@dataclass
class _Entry:
    address: PodAddress
    path: Path
    host_aliases: list[dict[str, Any]]


class HostsRegistry:
    """The live pods of this node and their hosts files; every change rewrites every file."""

    def __init__(self, domain: str = CLUSTER_DOMAIN) -> None:
        self._domain = domain
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def add(self, address: PodAddress, path: Path, host_aliases: list[dict[str, Any]]) -> None:
        with self._lock:
            self._entries[address.uid] = _Entry(address, path, host_aliases)
            self._rewrite_all()

    def remove(self, uid: str) -> None:
        with self._lock:
            if self._entries.pop(uid, None) is not None:
                self._rewrite_all()

    def _rewrite_all(self) -> None:
        addresses = [entry.address for entry in self._entries.values()]
        for entry in self._entries.values():
            content = render_hosts(entry.address, addresses, entry.host_aliases, self._domain)
            write_in_place(entry.path, content)
