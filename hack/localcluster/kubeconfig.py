"""Render the files other tools read: kubeconfigs and the shell ``env`` file.

Why pure functions: the contract in docs/architecture.md fixes what ``.cluster/kubeconfig`` and
``.cluster/env`` hold; rendering them apart from writing lets unit tests check that contract
without a running cluster.
"""

from __future__ import annotations

import base64
import shlex
from pathlib import Path

import yaml


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def render_kubeconfig(server: str, ca_cert: Path, client_cert: Path, client_key: Path, user: str) -> str:
    """A kubeconfig with one cluster, user and context, certificates embedded."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "finetune-local",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_cert)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": _b64(client_cert), "client-key-data": _b64(client_key)},
            }
        ],
        "contexts": [{"name": "finetune-local", "context": {"cluster": "finetune-local", "user": user}}],
        "current-context": "finetune-local",
    }
    return yaml.safe_dump(doc, sort_keys=False)


def env_values(
    kubeconfig: Path, kubectl_dir: Path, s3_endpoint: str, access_key: str, secret_key: str, bucket: str
) -> dict[str, str]:
    """The variables of ``.cluster/env``; ``PATH`` is a prefix to put before the caller's PATH."""
    return {
        "KUBECONFIG": str(kubeconfig),
        "PATH": str(kubectl_dir),
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "S3_BUCKET": bucket,
    }


def render_env(values: dict[str, str]) -> str:
    """Shell exports for ``source .cluster/env``; PATH is prepended to the existing PATH."""
    lines = ["# Written by `python -m localcluster up`; `source` it to talk to the local cluster."]
    for key, value in values.items():
        if key == "PATH":
            lines.append(f'export PATH={shlex.quote(value)}:"$PATH"')
        else:
            lines.append(f"export {key}={shlex.quote(value)}")
    return "\n".join(lines) + "\n"


def parse_env(text: str, current_path: str = "") -> dict[str, str]:
    """Read an env file written by :func:`render_env` back into a dict (PATH fully expanded)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("export "):
            continue
        key, _, raw = line[len("export ") :].partition("=")
        if key == "PATH":
            prefix = shlex.split(raw.replace(':"$PATH"', ""))[0]
            values[key] = f"{prefix}:{current_path}" if current_path else prefix
        else:
            values[key] = shlex.split(raw)[0] if raw else ""
    return values
