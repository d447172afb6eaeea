"""bench.promtext: reading the API server's /metrics text and counting requests per FlowSchema."""
# ruff: noqa: E501 (the sample lines are verbatim API server output)

from __future__ import annotations

from bench.promtext import by_label, delta, parse, total

APISERVER_TEXT = """\
# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, ...
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="GET",version="v1"} 12
apiserver_request_total{code="201",component="apiserver",dry_run="",group="batch",resource="jobs",scope="resource",subresource="",verb="POST",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="finetune.dev",resource="finetunejobs",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 7
apiserver_flowcontrol_dispatched_requests_total{flow_schema="exempt",priority_level="exempt"} 15137
apiserver_flowcontrol_dispatched_requests_total{flow_schema="finetune-bench-operator",priority_level="exempt"} 42
apiserver_flowcontrol_dispatched_requests_total{flow_schema="service-accounts",priority_level="workload-low"} 1.112e+03
apiserver_storage_objects{resource="pods"} 2500

not a sample line
weird_metric{le="+Inf"} NaN
"""


def test_parse_reads_names_labels_and_values():
    samples = parse(APISERVER_TEXT)
    first = samples[0]
    assert first.name == "apiserver_request_total"
    assert first.labels["verb"] == "GET" and first.labels["resource"] == "pods"
    assert first.value == 12
    assert len(samples) == 8  # comments, the blank line and the malformed line are skipped


def test_parse_only_named_metrics():
    samples = parse(APISERVER_TEXT, ("apiserver_request_total",))
    assert {sample.name for sample in samples} == {"apiserver_request_total"}


def test_parse_unescapes_label_values():
    (sample,) = parse('m{path="/a\\"b\\\\c"} 1\n')
    assert sample.labels["path"] == '/a"b\\c'


def test_total_sums_over_matching_labels():
    samples = parse(APISERVER_TEXT)
    assert total(samples, "apiserver_request_total") == 22
    assert total(samples, "apiserver_request_total", resource="finetunejobs", subresource="status") == 7
    assert total(samples, "apiserver_request_total", verb="DELETE") == 0


def test_requests_per_flow_schema():
    counts = by_label(parse(APISERVER_TEXT), "apiserver_flowcontrol_dispatched_requests_total", "flow_schema")
    assert counts == {"exempt": 15137, "finetune-bench-operator": 42, "service-accounts": 1112}


def test_delta_keeps_counters_that_grew():
    before = {"exempt": 100.0, "finetune-bench-operator": 40.0, "probes": 1.0}
    after = {"exempt": 150.0, "finetune-bench-operator": 40.0, "probes": 1.0, "new": 5.0}
    assert delta(before, after) == {"exempt": 50.0, "new": 5.0}
