"""The namespace prologue and the wrapped argv a container process is started with."""

import subprocess

from localcluster.processnode.launcher import (
    MARKER_ENV,
    Mount,
    Sandbox,
    base_environment,
    prologue,
    wrapped_argv,
)

SANDBOX = Sandbox(hostname="w-0", hosts_file="/state/pods/u/hosts", scratch_dir="/state/pods/u/scratch")


def test_prologue_mounts_hosts_sets_hostname_and_execs():
    script = prologue(
        SANDBOX, [Mount("/state/v", "/data"), Mount("/state/t", "/dev/termination-log", True)], ""
    )
    lines = script.splitlines()
    assert lines[1] == "mount --bind /state/pods/u/hosts /etc/hosts"
    assert lines[2] == "hostname w-0"
    assert "mount --bind /state/v /data" in lines
    assert "mount --bind /state/t /dev/termination-log" in lines
    assert lines[-2] == "mkdir -p /state/pods/u/scratch && cd /state/pods/u/scratch"
    assert lines[-1] == 'exec "$@"'


def test_prologue_quotes_paths_and_uses_working_dir():
    script = prologue(SANDBOX, [Mount("/state/my vol", "/data dir")], "/work dir")
    assert "mount --bind '/state/my vol' '/data dir'" in script
    assert "cd '/work dir'" in script


def test_prologue_runs_in_a_plain_shell(tmp_path):
    # The prologue without its mount lines is valid sh that execs the command with its arguments.
    script = "\n".join(
        line
        for line in prologue(SANDBOX, [], str(tmp_path)).splitlines()
        if not line.startswith(("mount", "hostname"))
    )
    out = subprocess.run(
        ["/bin/sh", "-c", script, "sh", "echo", "a b", "$(X)"], capture_output=True, text=True
    )
    assert out.stdout == "a b $(X)\n"


def test_wrapped_argv():
    assert wrapped_argv(["python", "-V"], "S", namespaces=False) == ["python", "-V"]
    wrapped = wrapped_argv(["python", "-V"], "S", namespaces=True)
    assert wrapped[:5] == ["unshare", "--mount", "--uts", "--propagation", "private"]
    assert wrapped[-4:] == ["S", "sh", "python", "-V"]


def test_base_environment_puts_this_environment_first_and_marks_the_container():
    env = base_environment("w-0", "uid/main")
    assert env["HOSTNAME"] == "w-0" and env[MARKER_ENV] == "uid/main"
    assert env["PATH"].split(":")[0].endswith("/bin")
