"""Pod addresses from a loopback range, one per pod UID, never reused while the pod exists.

Why loopback: nothing may dial private networks (docs/architecture.md, "Loopback only"), and
127.0.0.0/8 is all routed to ``lo`` on Linux, so every pod can bind its own address and reach every
other without any network setup. The first /24 of the range (which holds 127.0.0.1, the host) and
addresses ending in .0 or .255 are never handed out. Allocation continues after the last address
given out, so an address just released is not immediately reused by the next pod.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator

DEFAULT_POD_CIDR = "127.0.0.0/16"


def pool_addresses(cidr: str) -> Iterator[str]:
    """Every address of ``cidr`` a pod may get, in order."""
    network = ipaddress.ip_network(cidr, strict=False)
    if not network.subnet_of(ipaddress.ip_network("127.0.0.0/8")):
        raise ValueError(f"--pod-cidr {cidr} is not inside 127.0.0.0/8; pick a loopback range")
    host_block = ipaddress.ip_network("127.0.0.0/24")
    for address in network.hosts():
        last_octet = int(address) & 0xFF
        if address in host_block or last_octet in (0, 255):
            continue
        yield str(address)


def pick_address(candidates: list[str], used: set[str], after: str | None) -> str:
    """The first free candidate after ``after`` (wrapping around)."""
    start = candidates.index(after) + 1 if after in candidates else 0
    for offset in range(len(candidates)):
        candidate = candidates[(start + offset) % len(candidates)]
        if candidate not in used:
            return candidate
    raise RuntimeError(f"all {len(candidates)} pod addresses are in use; widen --pod-cidr")


class AddressAllocator:
    """Thread-safe UID -> address table; persistence is the pod state files' job."""

    def __init__(self, cidr: str = DEFAULT_POD_CIDR) -> None:
        self._candidates = list(pool_addresses(cidr))
        self._by_uid: dict[str, str] = {}
        self._last: str | None = None
        self._lock = threading.Lock()

    def restore(self, uid: str, address: str) -> None:
        with self._lock:
            self._by_uid[uid] = address

    def allocate(self, uid: str) -> str:
        with self._lock:
            if uid in self._by_uid:
                return self._by_uid[uid]
            address = pick_address(self._candidates, set(self._by_uid.values()), self._last)
            self._by_uid[uid] = address
            self._last = address
            return address

    def release(self, uid: str) -> None:
        with self._lock:
            self._by_uid.pop(uid, None)
