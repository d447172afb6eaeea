"""bench.scale_plan and bench.scale_metrics: the job mix fits the fleet; phase arithmetic."""

from __future__ import annotations

import pytest

from bench.report import table
from bench.scale_metrics import job_of, latest_per_job, phase_durations, scale_phases
from bench.scale_plan import (
    BENCH_NODE_LABEL,
    BENCH_TAINT_KEY,
    JobShape,
    bench_node,
    finetunejob,
    job_mix,
    job_names,
    mix_summary,
)
from finetune_api.spec import FineTuneJobSpec


@pytest.mark.parametrize(
    ("jobs", "gpus_per_worker"),
    [(8, 8), (80, 8), (100, 4), (160, 4), (500, 1), (640, 1)],
)
def test_mix_takes_the_most_gpus_per_worker_that_fit_on_200_nodes(jobs, gpus_per_worker):
    shapes = job_mix(jobs, nodes=200)
    assert {shape.gpus_per_worker for shape in shapes} == {gpus_per_worker}
    assert [shape.workers for shape in shapes[:5]] == [1, 2, 3, 4, 1]
    assert mix_summary(shapes)["gpus"] <= 200 * 8


def test_mix_beyond_the_fleet_gives_the_rest_cpu_only_workers():
    shapes = job_mix(1000, nodes=200)
    summary = mix_summary(shapes)
    assert summary["workers"] == 2500
    assert summary["gpus"] <= 1600 and summary["gpus"] >= 1600 - 4
    assert summary["cpuOnlyJobs"] > 0 and summary["gpusPerWorker"] == [1, 0]


def test_mix_needs_jobs_and_nodes():
    with pytest.raises(ValueError, match="at least one job and one node"):
        job_mix(0, nodes=10)


def test_bench_finetunejob_is_a_valid_spec_placed_on_bench_nodes():
    manifest = finetunejob("ftj-007", JobShape(workers=3, gpus_per_worker=4))
    spec = FineTuneJobSpec.model_validate(manifest["spec"])
    assert spec.resources.workers == 3 and spec.resources.gpus_per_worker == 4
    assert manifest["spec"]["resources"]["nodeSelector"] == {BENCH_NODE_LABEL: "true"}
    assert BENCH_TAINT_KEY in {t["key"] for t in manifest["spec"]["resources"]["tolerations"]}


def test_bench_node_adds_label_and_taint_to_a_kwok_node():
    node = {"metadata": {"labels": {"type": "kwok"}}, "spec": {"taints": [{"key": "nvidia.com/gpu"}]}}
    made = bench_node(node)
    assert made["metadata"]["labels"][BENCH_NODE_LABEL] == "true"
    assert [t["key"] for t in made["spec"]["taints"]] == ["nvidia.com/gpu", BENCH_TAINT_KEY]


def test_job_names_sort_in_creation_order():
    names = job_names("ftj", 100)
    assert names[0] == "ftj-00" and names[-1] == "ftj-99" and names == sorted(names)


@pytest.mark.parametrize(
    ("key", "job"),
    [("ftj-007-a1/2", "ftj-007"), ("ftj-007-a12", "ftj-007"), ("ftj-007", "ftj-007"), ("a-ab/0", "a-ab")],
)
def test_job_of_strips_attempt_and_index(key, job):
    assert job_of(key) == job


def test_latest_per_job_waits_for_every_expected_pod():
    times = {"a-a1/0": 1.0, "a-a1/1": 3.0, "b-a1/0": 2.0}
    assert latest_per_job(times) == {"a": 3.0, "b": 2.0}
    assert latest_per_job(times, {"a": 2, "b": 2}) == {"a": 3.0}


def test_phase_durations_per_job_and_total_from_origin():
    result = phase_durations({"a": 0.0, "b": 1.0}, {"a": 2.0, "b": 5.0, "c": 9.0}, origin=0.0)
    assert result["perJobSeconds"]["n"] == 2 and result["perJobSeconds"]["p50"] == 3.0
    assert result["totalSeconds"] == 9.0 and result["missing"] == 0
    assert phase_durations({"a": 0.0, "b": 1.0}, {"a": 2.0})["missing"] == 1


def test_scale_phases_from_milestones():
    phases = scale_phases(
        applied={"a": 10.0, "b": 10.5},
        workers={"a": 1, "b": 2},
        jobs_created={"a-a1": 11.0, "b-a1": 11.0},
        pods_created={"a-a1/0": 11.5, "b-a1/0": 12.0, "b-a1/1": 12.5},
        pods_running={"a-a1/0": 13.0, "b-a1/0": 13.0, "b-a1/1": 14.0},
        pods_succeeded={"a-a1/0": 20.0, "b-a1/0": 20.0, "b-a1/1": 21.0},
        done={"a": 22.0, "b": 21.5},
    )
    created = phases["applyToChildrenCreated"]
    assert created["totalSeconds"] == 2.5  # last pod at 12.5, first apply at 10.0
    assert created["perJobSeconds"]["max"] == 2.0  # b: applied 10.5, last pod 12.5
    assert phases["applyToPodsRunning"]["totalSeconds"] == 4.0
    done = phases["podsSucceededToDone"]
    assert done["totalSeconds"] == 1.0  # every pod Succeeded at 21.0, last job done at 22.0
    assert done["perJobSeconds"]["min"] == 0.5 and done["perJobSeconds"]["max"] == 2.0


def test_table_renders_markdown_with_dashes_for_missing_values():
    text = table(["N", "ratio"], [[100, 1.2345], [500, None]])
    assert text.splitlines() == [
        "| N   | ratio |",
        "|-----|-------|",
        "| 100 | 1.23  |",
        "| 500 | -     |",
    ]


def test_reconcile_stats_from_the_operators_metrics():
    from bench.operator_scale import reconcile_stats

    text = "\n".join(
        [
            'finetune_operator_reconcile_total{result="ok"} 30.0',
            'finetune_operator_reconcile_total{result="conflict"} 2.0',
            'finetune_operator_reconcile_duration_seconds_bucket{le="0.1"} 30.0',
            "finetune_operator_reconcile_duration_seconds_count 32.0",
            "finetune_operator_reconcile_duration_seconds_sum 1.6",
            'finetune_operator_reconcile_triggers_total{trigger="pods"} 20.0',
            'finetune_operator_api_requests_total{verb="POST",resource="jobs"} 10.0',
            'finetune_operator_api_requests_total{verb="GET",resource="pods"} 0.0',
            'finetune_operator_status_writes_total{result="written"} 30.0',
        ]
    )
    assert reconcile_stats(text, jobs=10) == {
        "reconcilePasses": {"ok": 30.0, "conflict": 2.0},
        "reconcilePassesPerJob": 3.2,
        "reconcileMeanSeconds": 0.05,
        "passTriggersPerJob": {"pods": 2.0},
        "clientRequestsPerJob": {"POST jobs": 1.0},
        "statusWritesPerJob": {"written": 3.0},
    }
    assert reconcile_stats("", jobs=10)["reconcileMeanSeconds"] is None
