"""Where a benchmark phase's CPU goes: /proc readings per process, and how the docs show them."""

from __future__ import annotations

import json
import os

import psutil

from bench.control_plane_cpu import (
    BENCH_CLIENT,
    CpuMeter,
    component_pids,
    process_cpu_seconds,
    spent,
    stat_cpu_seconds,
)
from bench.docs_tables import cpu_split_table, peer_section

# /proc/<pid>/stat of a process whose command name holds a space and a parenthesis.
STAT = "4242 (kube (api) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 7 0 0"


def test_stat_counts_user_and_system_time_after_the_command_name():
    assert stat_cpu_seconds(STAT, 100) == 3.0


def test_this_process_reads_and_a_gone_one_does_not():
    assert process_cpu_seconds(os.getpid()) is not None
    assert process_cpu_seconds(2**22 + 17) is None


def test_component_pids_come_from_the_clusters_pid_files_of_live_processes(tmp_path):
    me = psutil.Process()
    record = {"pid": me.pid, "create_time": me.create_time(), "argv": me.cmdline()}
    (tmp_path / "kube-apiserver.pid").write_text(json.dumps(record))
    (tmp_path / "etcd.pid").write_text(json.dumps({**record, "pid": 2**22 + 17}))  # gone
    assert component_pids(tmp_path) == {"kube-apiserver": me.pid}


def test_a_meter_adds_this_process_and_extra_sources(tmp_path):
    meter = CpuMeter(tmp_path)
    meter.add("operator", lambda: 1.5)
    snapshot = meter.snapshot()
    assert snapshot["operator"] == 1.5 and BENCH_CLIENT in snapshot


def test_spent_is_per_component_with_a_total_and_skips_what_one_side_lacks():
    assert spent({"etcd": 1.0, "kwok": 2.0}, {"etcd": 3.5, "kwok": 2.25, "operator": 9.0}) == {
        "etcd": 2.5,
        "kwok": 0.25,
        "total": 2.75,
    }


def run(total: float, cpu: dict | None = None) -> dict:
    phase = {"total": 1.0, "p50": 1.0, "p99": 1.0}
    figures = {"apiRequestsPerJob": 9.9, "peakRssMiB": 100.0, "cpuSecondsPerJob": 0.02}
    result = {"applyToPodsRunning": {"totalSeconds": total}, "operator": figures}
    if cpu is not None:
        result["cpuSecondsApplyToRunning"] = cpu
    return result | {"ratio": {"applyToPodsRunning": phase, "podsSucceededToDone": phase}}


def size(with_cpu: bool) -> dict:
    cpu = {"kube-apiserver": 50.0, "total": 100.0} if with_cpu else None
    ratio = {"applyToPodsRunning": {"total": 2.0}, "podsSucceededToDone": {"total": 0.2, "p99": 0.2}}
    entry = {"jobs": 1000, "floor": run(50.0, cpu), "ours": run(100.0, cpu), "ratioOursOverFloor": ratio}
    if with_cpu:
        entry |= {"floorWithServices": run(70.0, cpu), "ratioOursOverFloorWithServices": ratio}
    return entry


def test_the_cpu_split_lists_every_run_that_measured_it_and_nothing_for_older_results():
    text = cpu_split_table([size(True)])
    assert "floor (Jobs + Services)" in text and "finetune-operator" in text and "| 50 " in text
    assert cpu_split_table([size(False)]) == ""


def test_the_peer_table_reads_results_with_and_without_the_services_floor():
    for with_cpu in (True, False):
        text = peer_section({"peer": {"name": "p", "version": "v"}, "sizes": [size(with_cpu)]})
        assert "floor with Services" in text
