"""Everything needed to start one container, decided before anything is started.

Why apart from the pod worker: turning a container spec into an argv, an environment, mounts
and a working directory is the kubelet's "generate container config" step. It reads Secrets and
ConfigMaps and prepares volume directories, but starts nothing, so the worker only has to
decide *when* to start and what to record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster.processnode import launcher
from localcluster.processnode.envvars import Lookup, PodFacts, resolve_env
from localcluster.processnode.expansion import expand_all
from localcluster.processnode.hostsfile import pod_hostname
from localcluster.processnode.nodeobject import HOST_IP
from localcluster.processnode.projected import NodeServices, is_projected, write_projected_volumes
from localcluster.processnode.state import PodDirs
from localcluster.processnode.volumes import container_mounts, prepare_volume, read_only_volumes


@dataclass(frozen=True)
class LaunchPlan:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    problem: str = ""  # set when the command cannot be started (reported as StartError)
    refresh_at: float | None = None  # when projected volumes (tokens) must be written again


def start_problem(argv: list[str], env: Mapping[str, str]) -> str:
    """Why ``argv`` cannot be executed, or ""."""
    if not argv:
        return (
            "the container has no command: the process node ignores images, so set "
            "spec.containers[].command (and args)"
        )
    if launcher.resolve_executable(argv[0], env) is None:
        return f'exec: "{argv[0]}": executable file not found in $PATH'
    return ""


def plan_launch(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    ip: str,
    node_name: str,
    dirs: PodDirs,
    namespaces: bool,
    lookup: Lookup,
    services: NodeServices,
) -> LaunchPlan:
    """The plan for ``container``; raises EnvConfigError / ApiException while references are missing."""
    meta = pod["metadata"]
    spec = pod.get("spec") or {}
    hostname = pod_hostname(pod)
    facts = PodFacts(pod_ip=ip, host_ip=HOST_IP, node_name=node_name)
    env = resolve_env(container, pod, facts, lookup)
    projected = write_projected_volumes(pod, dirs.volume, facts, lookup, services.request_token)
    volume_paths: dict[str, str | None] = dict(projected.paths)
    for volume in spec.get("volumes") or []:
        if not is_projected(volume):
            volume_paths[volume["name"]] = prepare_volume(
                volume, dirs.volume(volume["name"]), lookup, meta["namespace"]
            )
    command = expand_all(list(container.get("command") or []), env)
    argv = command + expand_all(list(container.get("args") or []), env)
    # what a kubelet sets for the `kubernetes` Service; the pod's own env overrides it
    service_env = services.api_server.environment()
    full_env = launcher.base_environment(hostname, f"{meta['uid']}/{container['name']}") | service_env | env
    problem = start_problem(argv, full_env)
    if problem:
        return LaunchPlan(argv=argv, env=full_env, cwd="", problem=problem)
    termination_file = dirs.termination_file(container["name"])
    termination_file.parent.mkdir(parents=True, exist_ok=True)
    termination_file.write_text("")
    working_dir = container.get("workingDir", "")
    if not namespaces:  # no mounts possible: tell the process where its termination file is
        full_env.setdefault("FINETUNE_TERMINATION_LOG", str(termination_file))
        full_env["PROCESSNODE_TERMINATION_LOG"] = str(termination_file)
        if working_dir:
            Path(working_dir).mkdir(parents=True, exist_ok=True)
        return LaunchPlan(
            argv=argv, env=full_env, cwd=working_dir or str(dirs.scratch), refresh_at=projected.refresh_at
        )
    mounts = container_mounts(
        container, volume_paths, termination_file, read_only_volumes(spec.get("volumes") or [])
    )
    sandbox = launcher.Sandbox(hostname, str(dirs.hosts_file), str(dirs.scratch), str(dirs.root))
    script = launcher.prologue(sandbox, mounts, working_dir)
    return LaunchPlan(
        argv=launcher.wrapped_argv(argv, script, True),
        env=full_env,
        cwd=str(dirs.scratch),
        refresh_at=projected.refresh_at,
    )
