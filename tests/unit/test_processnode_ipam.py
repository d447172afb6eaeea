"""Pod addresses: loopback only, never the host's block, not reused right after release."""

import pytest

from localcluster.processnode.ipam import AddressAllocator, pick_address, pool_addresses


def test_pool_skips_host_block_and_edge_addresses():
    addresses = list(pool_addresses("127.0.0.0/22"))
    assert addresses[0] == "127.0.1.1"
    assert "127.0.0.1" not in addresses
    assert not any(a.endswith((".0", ".255")) for a in addresses)
    assert len(addresses) == 3 * 254


def test_pool_refuses_non_loopback_ranges():
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        list(pool_addresses("203.0.113.0/24"))


def test_pick_continues_after_last_and_wraps():
    candidates = ["127.0.1.1", "127.0.1.2", "127.0.1.3"]
    assert pick_address(candidates, set(), None) == "127.0.1.1"
    assert pick_address(candidates, {"127.0.1.1"}, "127.0.1.1") == "127.0.1.2"
    assert pick_address(candidates, {"127.0.1.2"}, "127.0.1.3") == "127.0.1.1"
    with pytest.raises(RuntimeError, match="--pod-cidr"):
        pick_address(candidates, set(candidates), None)


def test_allocator_is_stable_per_uid_and_does_not_reuse_at_once():
    allocator = AddressAllocator("127.0.0.0/16")
    first = allocator.allocate("a")
    assert allocator.allocate("a") == first
    allocator.release("a")
    second = allocator.allocate("b")
    assert second != first
    allocator.restore("c", "127.0.1.3")
    assert allocator.allocate("d") == "127.0.1.4"
