"""Hosts files: a pod's own names map to its own address; peers by their DNS names."""

import os

from localcluster.processnode.hostsfile import PodAddress, pod_hostname, render_hosts, write_in_place

OWN = PodAddress(uid="u0", namespace="team", hostname="ft-a1-0", subdomain="ft", ip="127.0.1.1")
PEER = PodAddress(uid="u1", namespace="team", hostname="ft-a1-1", subdomain="ft", ip="127.0.1.2")
OTHER_NS = PodAddress(uid="u2", namespace="other", hostname="w-0", subdomain="w", ip="127.0.1.3")
NO_SUBDOMAIN = PodAddress(uid="u3", namespace="team", hostname="solo", subdomain="", ip="127.0.1.4")


def lines_for(ip: str, content: str) -> list[list[str]]:
    return [line.split() for line in content.splitlines() if line.split() and line.split()[0] == ip]


def test_own_names_resolve_to_own_address_first():
    content = render_hosts(OWN, [OWN, PEER])
    own = lines_for("127.0.1.1", content)
    assert own == [
        ["127.0.1.1", "ft-a1-0.ft.team.svc.cluster.local", "ft-a1-0.ft.team.svc", "ft-a1-0.ft", "ft-a1-0"]
    ]
    assert content.index("127.0.1.1") < content.index("127.0.1.2")
    assert lines_for("127.0.0.1", content) == [["127.0.0.1", "localhost"]]


def test_peers_by_short_name_only_in_their_namespace():
    content = render_hosts(OWN, [PEER, OTHER_NS, NO_SUBDOMAIN])
    assert lines_for("127.0.1.2", content) == [
        ["127.0.1.2", "ft-a1-1.ft.team.svc.cluster.local", "ft-a1-1.ft.team.svc", "ft-a1-1.ft"]
    ]
    assert lines_for("127.0.1.3", content) == [
        ["127.0.1.3", "w-0.w.other.svc.cluster.local", "w-0.w.other.svc"]
    ]
    assert lines_for("127.0.1.4", content) == []


def test_pod_without_subdomain_gets_its_hostname_only():
    assert lines_for("127.0.1.4", render_hosts(NO_SUBDOMAIN, [])) == [["127.0.1.4", "solo"]]


def test_host_aliases_are_appended():
    content = render_hosts(OWN, [], [{"ip": "127.0.0.9", "hostnames": ["s3.local", "minio"]}])
    assert lines_for("127.0.0.9", content) == [["127.0.0.9", "s3.local", "minio"]]


def test_pod_hostname_prefers_spec_hostname_and_cuts_long_names():
    assert pod_hostname({"metadata": {"name": "p"}, "spec": {"hostname": "h"}}) == "h"
    long_name = "a" * 62 + "-b"
    assert pod_hostname({"metadata": {"name": long_name}, "spec": {}}) == "a" * 62


def test_write_in_place_keeps_the_inode(tmp_path):
    path = tmp_path / "hosts"
    write_in_place(path, "a much longer first content\n")
    inode = os.stat(path).st_ino
    write_in_place(path, "short\n")
    assert os.stat(path).st_ino == inode
    assert path.read_text() == "short\n"
