"""What the chart's ServiceAccount may and may not do, asked of the API server's own authorizer.

`kubectl auth can-i --as=system:serviceaccount:<ns>:<sa>` evaluates the real RBAC objects the chart
installed (SubjectAccessReview), so these answers are the cluster's, not a reading of the YAML.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.plugins.helm import Release

pytestmark = pytest.mark.cluster


def can_i(kubectl: Callable[..., Any], release: Release, verb: str, resource: str, *scope: str) -> bool:
    result = kubectl("auth", "can-i", verb, resource, f"--as={release.subject}", *scope, check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl auth can-i answered {answer!r}: {result.stderr}"
    return answer == "yes"


def test_namespaced_mode_is_confined_to_the_watched_namespaces(
    chart_release: Callable[..., Release], namespace: str, extra_namespaces: Callable[..., str], kubectl: Any
) -> None:
    watched = extra_namespaces("watched")
    unwatched = extra_namespaces("other")
    release = chart_release(namespace, {"rbac.scope": "namespaced", "operator.watchNamespaces": [watched]})

    # What it needs, in the watched namespace.
    assert can_i(kubectl, release, "create", "jobs.batch", "-n", watched)
    assert can_i(kubectl, release, "watch", "finetunejobs.finetune.dev", "-n", watched)
    assert can_i(
        kubectl, release, "patch", "finetunejobs.finetune.dev", "--subresource=status", "-n", watched
    )
    assert can_i(kubectl, release, "create", "events", "-n", watched)
    assert can_i(kubectl, release, "watch", "finetunesweeps.finetune.dev", "-n", watched)
    assert can_i(
        kubectl, release, "patch", "finetunesweeps.finetune.dev", "--subresource=status", "-n", watched
    )
    assert can_i(kubectl, release, "patch", "finetunejobs.finetune.dev", "-n", watched)  # sweep suspend

    # Nothing at all outside it.
    for verb, resource in [
        ("create", "pods"),
        ("list", "pods"),
        ("create", "jobs.batch"),
        ("list", "finetunejobs.finetune.dev"),
        ("patch", "finetunejobs.finetune.dev"),
        ("list", "finetunesweeps.finetune.dev"),
        ("create", "services"),
        ("get", "secrets"),
    ]:
        assert not can_i(kubectl, release, verb, resource, "-n", unwatched), (
            f"{verb} {resource} in {unwatched}"
        )
    assert not can_i(kubectl, release, "list", "pods", "--all-namespaces")
    assert not can_i(kubectl, release, "list", "finetunejobs.finetune.dev", "--all-namespaces")
    assert not can_i(kubectl, release, "list", "finetunesweeps.finetune.dev", "--all-namespaces")


@pytest.mark.parametrize("scope", ["cluster", "namespaced"])
def test_no_secrets_no_spec_writes_no_pod_writes(
    chart_release: Callable[..., Release],
    namespace: str,
    extra_namespaces: Callable[..., str],
    kubectl: Any,
    scope: str,
) -> None:
    watched = extra_namespaces("watched")
    unwatched = extra_namespaces("other")
    values: dict[str, Any] = {"rbac.scope": scope}
    if scope == "namespaced":
        values["operator.watchNamespaces"] = [watched]
    release = chart_release(namespace, values)

    for ns in (watched, unwatched, namespace):
        for verb in ("get", "list", "watch"):
            assert not can_i(kubectl, release, verb, "secrets", "-n", ns), f"{verb} secrets in {ns}"
    assert not can_i(kubectl, release, "list", "secrets", "--all-namespaces")
    # Spec and metadata belong to the user; the operator creates runs of FineTuneSchedules and trials
    # of FineTuneSweeps, and patches FineTuneJobs only to set a sweep trial's runPolicy.suspend (the
    # chart's rules say so; RBAC cannot narrow patch to one field).
    assert not can_i(kubectl, release, "update", "finetunejobs.finetune.dev", "-n", watched)
    assert can_i(kubectl, release, "patch", "finetunejobs.finetune.dev", "-n", watched)
    for verb in ("update", "patch", "create", "delete"):
        for resource in ("finetuneschedules.finetune.dev", "finetunesweeps.finetune.dev"):
            assert not can_i(kubectl, release, verb, resource, "-n", watched), f"{verb} {resource}"
    for resource in ("finetunejobs", "finetuneschedules", "finetunesweeps"):
        assert not can_i(
            kubectl, release, "update", f"{resource}.finetune.dev", "--subresource=status", "-n", watched
        ), f"update {resource}/status"
        assert can_i(
            kubectl, release, "patch", f"{resource}.finetune.dev", "--subresource=status", "-n", watched
        ), f"patch {resource}/status"
    for verb in ("create", "delete", "patch"):
        assert not can_i(kubectl, release, verb, "pods", "-n", watched), f"{verb} pods"
    assert not can_i(kubectl, release, "create", "pods", "-n", unwatched)
    assert not can_i(kubectl, release, "create", "clusterrolebindings.rbac.authorization.k8s.io")
    assert not can_i(kubectl, release, "patch", "customresourcedefinitions.apiextensions.k8s.io")
