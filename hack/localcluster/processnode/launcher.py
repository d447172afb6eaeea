"""Turn one container of a pod into one local process, inside the pod's own little namespace.

Why ``unshare --mount --uts``: a container sees its own /etc/hosts, hostname and mounts; local
processes share the machine's. A private mount + UTS namespace (we run as root) gives each
container process exactly those three things and nothing else: it shares the network namespace,
so pods reach each other on their 127.x addresses. Inside, a small shell prologue

- bind-mounts the pod's hosts file over /etc/hosts (libc-level pod DNS, see ``hostsfile``),
- sets the hostname to the pod's hostname,
- bind-mounts each volume at its mountPath, read-only where the pod says readOnly (missing mount
  points are created on the host as empty directories; that is the price of not having a root
  filesystem),
- bind-mounts a per-container file at terminationMessagePath (default /dev/termination-log),
- changes into workingDir (created when missing) or, without one, the pod's scratch directory,
- then ``exec``s the command, so the container's main process keeps the pid we started.

A volume mounted at a path above the pod's own state directory (an emptyDir at ``/tmp`` while the
cluster lives in ``/tmp/...``) would hide the sources of the mounts after it. So when a mount
target covers the pod directory, the prologue first opens that directory on fd 3 and names every
source inside it as ``/proc/self/fd/3/...`` with ``mount --no-canonicalize``: the kernel follows
the open descriptor, not the (now covered) path.

The image is ignored: commands resolve on a PATH that starts with this Python environment's bin
directory (``python``, ``torchrun``). Without a working ``unshare`` the process runs directly
(no DNS, hostname or mounts) and a warning says so; see docs/local-cluster.md.

Every process carries ``PROCESSNODE_CONTAINER=<pod uid>/<container>`` in its environment so
that processes which leave the process group (torchrun starts its workers in new sessions)
can still be found and killed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MARKER_ENV = "PROCESSNODE_CONTAINER"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
_INHERITED = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL", "TERM")


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    is_file: bool = False
    read_only: bool = False


@dataclass(frozen=True)
class Sandbox:
    """The per-pod facts the prologue needs."""

    hostname: str
    hosts_file: str
    scratch_dir: str
    pod_dir: str = ""  # the pod's state directory: every source of a pod volume lies inside it


def runtime_path() -> str:
    """PATH for pod processes: this environment's bin directory first."""
    venv_bin = str(Path(sys.executable).parent)
    rest = [part for part in os.environ.get("PATH", "/usr/bin:/bin").split(":") if part and part != venv_bin]
    return ":".join([venv_bin, *rest])


def base_environment(hostname: str, container_key: str) -> dict[str, str]:
    """What a container image would provide: PATH, HOSTNAME, a few inherited basics."""
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env.update(
        PATH=runtime_path(),
        HOSTNAME=hostname,
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    env[MARKER_ENV] = container_key
    return env


IMAGE_ROOT = os.path.commonpath([sys.prefix, str(Path(__file__).resolve().parents[3])])
"""What stands in for a container image here: this Python environment and the checkout it runs from
(editable installs point into it). Their common parent; "/" when they share none."""


def prologue(sandbox: Sandbox, mounts: list[Mount], working_dir: str, image_root: str = IMAGE_ROOT) -> str:
    """The shell script run inside the namespaces before ``exec "$@"``."""
    q = shlex.quote
    lines = [
        "set -e",
        f"mount --bind {q(sandbox.hosts_file)} /etc/hosts",
        f"hostname {q(sandbox.hostname)}",
    ]
    # A volume over a parent of the "image" (an emptyDir at /tmp while the checkout and its .venv
    # live in /tmp/...) would hide the program itself: keep the image open on fd 4 and bind it back
    # in place after the volumes, as a real image's files stay reachable beside its volumes.
    image_hidden = image_root != "/" and any(_covers(mount.target, image_root) for mount in mounts)
    if image_hidden:
        lines.append(f"exec 4<{q(image_root)}")
    covered = bool(sandbox.pod_dir) and any(_covers(mount.target, sandbox.pod_dir) for mount in mounts)
    bind = "mount --bind"
    if covered:  # name sources through an open descriptor: their path may be mounted over
        lines.append(f"exec 3<{q(sandbox.pod_dir)}")
        bind = "mount --no-canonicalize --bind"
        mounts = [_through_fd(mount, sandbox.pod_dir) for mount in mounts]
    for mount in mounts:
        if mount.is_file:
            parent = q(os.path.dirname(mount.target) or "/")
            lines.append(f"[ -e {q(mount.target)} ] || {{ mkdir -p {parent}; : > {q(mount.target)}; }}")
        else:
            lines.append(f"mkdir -p {q(mount.target)}")
        lines.append(f"{bind} {q(mount.source)} {q(mount.target)}")
        if mount.read_only:  # a bind mount takes its own flags only on a remount
            lines.append(f"mount -o remount,bind,ro {q(mount.target)}")
    if image_hidden:
        lines.append(f"mkdir -p {q(image_root)}")
        lines.append(f"mount --no-canonicalize --bind /proc/self/fd/4 {q(image_root)}")
    closing = " 4<&-" if image_hidden else ""
    if covered:
        workdir = working_dir or _fd_path(sandbox.scratch_dir, sandbox.pod_dir)
        lines.append(f"mkdir -p {q(workdir)} && cd -P {q(workdir)}")
        lines.append(f'exec "$@" 3<&-{closing}')
        return "\n".join(lines)
    workdir = working_dir or sandbox.scratch_dir
    lines.append(f"mkdir -p {q(workdir)} && cd {q(workdir)}")
    lines.append(f'exec "$@"{closing}')
    return "\n".join(lines)


def _covers(target: str, path: str) -> bool:
    """Whether a mount at ``target`` hides ``path`` (``target`` is ``path`` or one of its parents)."""
    target, path = os.path.normpath(target), os.path.normpath(path)
    return target == "/" or path == target or path.startswith(target + "/")


def _fd_path(path: str, pod_dir: str) -> str:
    """``path`` as seen through fd 3 (the open pod directory) when it lies inside ``pod_dir``."""
    if _covers(pod_dir, path):
        return "/proc/self/fd/3/" + os.path.relpath(path, pod_dir)
    return path


def _through_fd(mount: Mount, pod_dir: str) -> Mount:
    return Mount(_fd_path(mount.source, pod_dir), mount.target, mount.is_file, mount.read_only)


def wrapped_argv(argv: list[str], script: str, namespaces: bool) -> list[str]:
    """The argv actually started: unshare + prologue around the container's argv."""
    if not namespaces:
        return argv
    return [
        "unshare",
        "--mount",
        "--uts",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        script,
        "sh",
        *argv,
    ]


def resolve_executable(argv0: str, env: Mapping[str, str]) -> str | None:
    """Where ``argv0`` is found on the container's PATH, or None (a StartError)."""
    if "/" in argv0:
        return argv0
    return shutil.which(argv0, path=env.get("PATH", runtime_path()))


def unshare_works() -> bool:
    """Probe once whether private mount+UTS namespaces can be created here."""
    try:
        probe = subprocess.run(
            ["unshare", "--mount", "--uts", "--propagation", "private", "--", "true"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def spawn(argv: list[str], env: Mapping[str, str], log_path: Path, cwd: str) -> subprocess.Popen[bytes]:
    """Start the process in its own session (so its process group is ours to signal)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
