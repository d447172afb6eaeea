"""Thread pools sized from the pod's CPU limit (downward API), the cgroup quota, then visible CPUs."""

import pytest

from finetune_operator.job.builders import build_job
from finetune_operator.settings import Settings
from finetune_trainer import launch, threads

from .test_operator_builders import env_of, make_job


@pytest.mark.parametrize(
    ("env", "cgroup", "visible", "cpus", "source"),
    [
        ({"FINETUNE_CPU_LIMIT": "4"}, 8.0, 64, 4, "env FINETUNE_CPU_LIMIT (limits.cpu)"),
        ({"FINETUNE_CPU_LIMIT": "500m"}, None, 64, 1, "env FINETUNE_CPU_LIMIT (limits.cpu)"),
        ({}, 2.5, 64, 3, "cgroup cpu quota"),
        ({"FINETUNE_CPU_LIMIT": "nonsense"}, None, 64, 64, "visible cpus"),
        ({}, None, None, 1, "visible cpus"),
    ],
)
def test_cpu_budget_order(env, cgroup, visible, cpus, source):
    assert threads.cpu_budget(env, cgroup, visible) == threads.CpuBudget(cpus, source)


@pytest.mark.parametrize(
    ("text", "cpus"), [("200000 100000", 2.0), ("max 100000", None), ("50000 100000", 0.5), ("", None)]
)
def test_cgroup_v2(text, cpus):
    assert threads.cgroup_v2_cpus(text) == cpus


def test_cgroup_v1_and_files(tmp_path):
    assert threads.cgroup_v1_cpus("-1", "100000") is None
    assert threads.cgroup_v1_cpus("300000", "100000") == 3.0
    (tmp_path / "cpu.max").write_text("400000 100000\n")
    assert threads.read_cgroup_cpus(tmp_path) == 4.0
    assert threads.read_cgroup_cpus(tmp_path / "absent") is None


def test_share_per_process_and_env_for_children():
    budget = threads.CpuBudget(4, "x")
    assert threads.threads_per_process(budget, 2) == 2
    assert threads.threads_per_process(budget, 8) == 1
    assert threads.thread_env(2, {"MKL_NUM_THREADS": "3"}) == {
        "OMP_NUM_THREADS": "2",
        "OPENBLAS_NUM_THREADS": "2",
    }


def test_worker_threads_explicit_env_wins_then_local_share():
    calls = []
    assert threads.configure_torch({"OMP_NUM_THREADS": "3", "FINETUNE_CPU_LIMIT": "8"}, calls.append) == (
        3,
        "env OMP_NUM_THREADS",
    )
    env = {"FINETUNE_CPU_LIMIT": "8", "LOCAL_WORLD_SIZE": "4"}
    assert threads.configure_torch(env, calls.append) == (2, "env FINETUNE_CPU_LIMIT (limits.cpu)")
    assert calls == [3, 2]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--nnodes=2", "--nproc-per-node=4", "-m", "finetune_trainer"], 4),
        (["--nproc_per_node", "2", "-m", "finetune_trainer"], 2),
        (["--master-port", "29500", "-m", "finetune_trainer", "--nproc-per-node=9"], 1),
        (["--nnodes=1", "-m", "finetune_trainer"], 1),
    ],
)
def test_nproc_per_node(arguments, expected):
    assert launch.nproc_per_node(arguments) == expected


def test_launcher_shares_the_limit_among_workers_and_keeps_explicit_settings():
    args = ["--nproc-per-node=2", "-m", "finetune_trainer"]
    env = launch.worker_thread_env(args, {"FINETUNE_CPU_LIMIT": "6"})
    assert env == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "3"}
    assert launch.worker_thread_env(args, {"FINETUNE_CPU_LIMIT": "6", "OMP_NUM_THREADS": "1"}) == {
        "MKL_NUM_THREADS": "3",
        "OPENBLAS_NUM_THREADS": "3",
    }


def test_worker_container_gets_its_cpu_limit_through_the_downward_api():
    env = env_of(build_job(make_job(), 1, Settings()))
    ref = env["FINETUNE_CPU_LIMIT"]["valueFrom"]["resourceFieldRef"]
    assert ref["resource"] == "limits.cpu" and ref["containerName"] == "trainer"
