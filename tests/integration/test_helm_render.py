"""`helm lint` and `helm template` of the chart in both RBAC modes, and what the rendered RBAC grants.

Needs the helm binary (built once from its Go module by the `helm` fixture) but no cluster.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.plugins.helm import CHART_DIR, Helm, find, set_flags

NAMESPACED = {"rbac.scope": "namespaced", "operator.watchNamespaces": ["team-a", "team-b"]}
EVERYTHING_ON = {
    "metrics.serviceMonitor.enabled": True,
    "metrics.podMonitor.enabled": True,
    "networkPolicy.enabled": True,
    "dashboard.enabled": True,
}
MODES = {"cluster": {}, "namespaced": NAMESPACED}


def rules_of(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for obj in objects if obj["kind"] in ("ClusterRole", "Role") for rule in obj["rules"]]


def grants(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
        for rule in rules
    )


@pytest.mark.parametrize("mode", MODES)
def test_helm_lint_passes_strict(helm: Helm, mode: str) -> None:
    values = {**MODES[mode], **EVERYTHING_ON, "operator.watchNamespaces": ["team-a", "team-b"]}
    result = helm.run("lint", "--strict", str(CHART_DIR), *set_flags(values))
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("mode", MODES)
def test_helm_template_renders_the_operator_and_its_rbac(helm: Helm, mode: str) -> None:
    objects = helm.template(MODES[mode])
    kinds = {obj["kind"] for obj in objects}
    assert {"Deployment", "ServiceAccount", "Service"} <= kinds
    if mode == "cluster":
        assert [o["metadata"]["name"] for o in find(objects, "ClusterRole")] == ["ft-finetune-operator"]
        assert find(objects, "Role") == []
        assert len(find(objects, "ClusterKopfPeering", "finetune-operator")) == 1
    else:
        assert {o["metadata"]["namespace"] for o in find(objects, "Role")} == {"team-a", "team-b"}
        assert {o["metadata"]["namespace"] for o in find(objects, "RoleBinding")} == {"team-a", "team-b"}
        assert {o["metadata"]["namespace"] for o in find(objects, "KopfPeering")} == {"team-a", "team-b"}
        assert find(objects, "ClusterKopfPeering") == []


@pytest.mark.parametrize("mode", MODES)
def test_rbac_grants_no_secrets_no_spec_writes_no_pod_writes(helm: Helm, mode: str) -> None:
    rules = rules_of(helm.template(MODES[mode]))
    assert not any("secrets" in rule["resources"] or "*" in rule["resources"] for rule in rules)
    assert not any("*" in rule["verbs"] or "*" in rule["apiGroups"] for rule in rules)
    # Spec and metadata belong to the user: no updates at all. The one patch is the sweep controller's
    # merge-patch of its own trials' spec.runPolicy.suspend (RBAC cannot narrow a verb to a field).
    for resource in ("finetunejobs", "finetuneschedules", "finetunesweeps"):
        assert not grants(rules, "finetune.dev", resource, "update"), f"{resource} update must not be granted"
    for resource in ("finetuneschedules", "finetunesweeps"):
        assert not grants(rules, "finetune.dev", resource, "patch"), f"{resource} patch must not be granted"
    assert grants(rules, "finetune.dev", "finetunejobs", "patch")
    for verb in ("create", "delete", "patch", "update"):
        assert not grants(rules, "", "pods", verb)
    assert grants(rules, "finetune.dev", "finetunejobs/status", "patch")
    assert grants(rules, "batch", "jobs", "create")


def test_namespaced_mode_grants_only_read_only_discovery_cluster_wide(helm: Helm) -> None:
    objects = helm.template(NAMESPACED)
    cluster_rules = [rule for obj in find(objects, "ClusterRole") for rule in obj["rules"]]
    assert cluster_rules == [
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["list", "watch"],
        },
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    ]


def test_deployment_is_one_recreated_restricted_replica_with_probes(helm: Helm) -> None:
    (deployment,) = find(helm.template(), "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert "--all-namespaces" in container["args"]
    assert "--liveness=http://0.0.0.0:8081/healthz" in container["args"]


def test_operator_flags_exist_in_the_operators_cli(helm: Helm) -> None:
    from finetune_operator.settings import build_parser

    (deployment,) = find(
        helm.template({**NAMESPACED, "trainer.defaultCheckpointUri": "s3://ckpt"}), "Deployment"
    )
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args
    # Parses with the operator's own argument parser: a renamed flag fails here, not in a cluster.
    parsed = build_parser({}).parse_args(args)
    assert parsed.namespaces == ["team-a", "team-b"]
    assert parsed.default_checkpoint_uri == "s3://ckpt"
    assert parsed.peering_name == "finetune-operator"


def test_monitors_networkpolicy_and_dashboard_render_when_enabled(helm: Helm) -> None:
    objects = helm.template({**NAMESPACED, **EVERYTHING_ON})
    (pod_monitor,) = find(objects, "PodMonitor")
    assert (
        pod_monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/managed-by"] == "finetune-operator"
    )
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    (service_monitor,) = find(objects, "ServiceMonitor")
    assert service_monitor["spec"]["endpoints"][0]["honorLabels"] is True
    policies = find(objects, "NetworkPolicy")
    assert {p["metadata"]["namespace"] for p in policies} == {"team-a", "team-b"}
    metrics_rule = policies[0]["spec"]["ingress"][0]
    assert metrics_rule["ports"] == [{"protocol": "TCP", "port": 9090}]
    assert metrics_rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
    (dashboard,) = find(objects, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert '"uid": "finetune-jobs"' in dashboard["data"]["finetune-jobs.json"]


def test_optional_objects_are_off_by_default(helm: Helm) -> None:
    kinds = {obj["kind"] for obj in helm.template()}
    assert kinds.isdisjoint({"PodMonitor", "ServiceMonitor", "NetworkPolicy", "ConfigMap", "Secret"})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rbac.scope": "namespaced"}, "rbac.scope=namespaced needs operator.watchNamespaces"),
        ({"networkPolicy.enabled": True}, "networkPolicy.enabled=true needs networkPolicy.namespaces"),
        ({"rbac.scope": "everything"}, "/rbac/scope"),
        ({"operator.logLevel": "chatty"}, "/operator/logLevel"),
        ({"replicaCount": 2}, "replicaCount"),
    ],
)
def test_bad_values_fail_with_a_message_naming_the_value(
    helm: Helm, values: dict[str, Any], message: str
) -> None:
    result = helm.run("template", "ft", str(CHART_DIR), *set_flags(values), check=False)
    assert result.returncode != 0
    assert message in result.stderr


def test_storage_secrets_are_per_namespace_with_their_own_keys(helm: Helm) -> None:
    values = {
        **NAMESPACED,
        "storageSecret.create": True,
        "storageSecret.perNamespace": {
            "team-a": {
                "accessKeyId": "AK-A",
                "secretAccessKey": "SK-A",
                "endpointUrl": "http://127.0.0.1:9000",
            },
            "team-b": {"accessKeyId": "AK-B", "secretAccessKey": "SK-B"},
        },
    }
    secrets = {s["metadata"]["namespace"]: s["stringData"] for s in find(helm.template(values), "Secret")}
    assert secrets == {
        "team-a": {
            "AWS_ACCESS_KEY_ID": "AK-A",
            "AWS_SECRET_ACCESS_KEY": "SK-A",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        },
        "team-b": {"AWS_ACCESS_KEY_ID": "AK-B", "AWS_SECRET_ACCESS_KEY": "SK-B"},
    }


def test_one_key_is_not_copied_into_several_namespaces_unless_shared(helm: Helm) -> None:
    values = {
        **NAMESPACED,
        "storageSecret.create": True,
        "storageSecret.accessKeyId": "AK",
        "storageSecret.secretAccessKey": "SK",
    }
    # No default to the watched namespaces any more: the namespaces must be listed.
    result = helm.run("template", "ft", str(CHART_DIR), *set_flags(values), check=False)
    assert result.returncode != 0 and "storageSecret.perNamespace" in result.stderr
    values["storageSecret.namespaces"] = ["team-a", "team-b"]
    result = helm.run("template", "ft", str(CHART_DIR), *set_flags(values), check=False)
    assert result.returncode != 0 and "more than one namespace" in result.stderr
    secrets = find(helm.template({**values, "storageSecret.shared": True}), "Secret")
    assert {s["metadata"]["namespace"] for s in secrets} == {"team-a", "team-b"}


def test_cluster_scope_with_watched_namespaces_binds_job_creation_only_there(helm: Helm) -> None:
    objects = helm.template({"operator.watchNamespaces": ["team-a", "team-b"]})
    bindings = find(objects, "RoleBinding")
    assert {b["metadata"]["namespace"] for b in bindings} == {"team-a", "team-b"}
    assert all(b["roleRef"]["kind"] == "ClusterRole" for b in bindings)
    for binding in find(objects, "ClusterRoleBinding"):
        role = find(objects, "ClusterRole", binding["roleRef"]["name"])[0]
        assert not grants(role["rules"], "batch", "jobs", "create"), binding["metadata"]["name"]
        assert not grants(role["rules"], "", "configmaps", "create")
    everywhere = helm.template({})
    assert [b["roleRef"]["name"] for b in find(everywhere, "ClusterRoleBinding")] == ["ft-finetune-operator"]


def test_rbac_lets_the_operator_keep_the_spec_configmap(helm: Helm) -> None:
    rules = rules_of(helm.template({}))
    for verb in ("get", "create", "delete"):
        assert grants(rules, "", "configmaps", verb)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_rbac_lets_the_operator_read_kueue_workloads_and_nothing_more(helm: Helm, mode: str) -> None:
    """The Suspended condition quotes Kueue's Workload (operator job/kueue.py): list only."""
    rules = rules_of(helm.template(MODES[mode]))
    assert grants(rules, "kueue.x-k8s.io", "workloads", "list")
    for verb in ("get", "watch", "create", "update", "patch", "delete"):
        assert not grants(rules, "kueue.x-k8s.io", "workloads", verb), verb


def test_policy_values_become_operator_flags(helm: Helm) -> None:
    values = {
        "policy.allowedImages": ["registry.example/team/*"],
        "policy.storagePrefixes": ["s3://ml/{namespace}/"],
        "policy.allowedPriorityClasses": ["batch", "batch-*"],
        "policy.allowBlanketTolerations": True,
    }
    deployment = find(helm.template(values), "Deployment")[0]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--allowed-images=registry.example/team/*" in args
    assert "--storage-prefix=s3://ml/{namespace}/" in args
    assert "--allowed-priority-classes=batch,batch-*" in args
    assert "--allow-blanket-tolerations" in args
    defaults = find(helm.template({}), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--allowed-priority-classes=*" in defaults and "--allow-blanket-tolerations" not in defaults
    assert not [arg for arg in defaults if arg.startswith(("--allowed-images", "--storage-prefix"))]
