"""The namespace prologue and the wrapped argv a container process is started with."""

import subprocess

from localcluster.processnode.launcher import (
    MARKER_ENV,
    Mount,
    Sandbox,
    base_environment,
    prologue,
    unshare_works,
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


def test_a_volume_over_the_image_binds_the_image_back_after_the_volumes():
    # An emptyDir at /tmp while the checkout and its .venv (the process node's "image") live in /tmp/ck.
    script = prologue(SANDBOX, [Mount("/state/pods/u/tmp", "/tmp")], "", image_root="/tmp/ck")
    lines = script.splitlines()
    opened = lines.index("exec 4</tmp/ck")
    volume = lines.index("mount --bind /state/pods/u/tmp /tmp")
    restored = lines.index("mount --no-canonicalize --bind /proc/self/fd/4 /tmp/ck")
    assert opened < volume < restored  # opened before it is hidden, bound back after
    assert lines[-1] == 'exec "$@" 4<&-'


def test_volumes_elsewhere_leave_the_image_alone():
    script = prologue(SANDBOX, [Mount("/state/v", "/data")], "", image_root="/tmp/ck")
    assert "fd/4" not in script and script.splitlines()[-1] == 'exec "$@"'


def test_the_image_stays_runnable_under_a_volume_over_its_parent(tmp_path):
    # For real, in a private mount namespace: an emptyDir over the directory that holds the "image".
    assert unshare_works(), "unshare --mount does not work here: the process node cannot mount volumes"
    image, volume = tmp_path / "ck", tmp_path / "emptydir"
    image.mkdir()
    volume.mkdir()
    program = image / "prog"
    program.write_text("#!/bin/sh\necho from-the-image\n")
    program.chmod(0o755)
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    script = prologue(
        Sandbox("img", str(hosts), "/"), [Mount(str(volume), str(tmp_path))], "/", image_root=str(image)
    )
    done = subprocess.run(
        wrapped_argv([str(program)], script, True), capture_output=True, text=True, timeout=30, check=False
    )
    assert done.stdout == "from-the-image\n", done.stderr
    assert not (volume / "ck" / "prog").exists()  # bound over the volume, not copied into it
