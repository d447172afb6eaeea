"""Certificates and keys of the local control plane, made with the `openssl` command.

Why openssl and not a Python library: it is present on every Linux machine, needs no extra
dependency, and makes the few files the control plane needs in well under a second (EC P-256
keys). They are made once per state directory and kept: etcd data holds service-account tokens
signed with these keys, so regenerating them would invalidate a reused cluster.

Files (under ``<state>/pki``):

- ``ca.crt``/``ca.key``: the cluster CA (kubeconfig trust root, kube-controller-manager
  ``--root-ca-file``, client-certificate authority of the API server).
- ``apiserver.crt``/``.key``: serving certificate for 127.0.0.1, localhost and the
  ``kubernetes`` Service names.
- ``admin.crt``/``.key``: client certificate ``CN=finetune-admin, O=system:masters``.
- ``controller-manager.crt``/``.key``, ``scheduler.crt``/``.key``: the identities RBAC's
  bootstrap roles expect (``system:kube-controller-manager``, ``system:kube-scheduler``).
- ``apiserver-kubelet-client.crt``/``.key``: the API server's client identity towards kubelets
  (``--kubelet-client-certificate``); the process node's log endpoint accepts only it.
- ``processnode.crt``/``.key``: the process node's kubelet serving certificate (127.0.0.1), which
  the API server verifies with ``--kubelet-certificate-authority`` (the cluster CA).
- ``kueue-webhook.crt``/``.key``: Kueue's webhook serving certificate (127.0.0.1), trusted by the
  webhook configurations through the cluster CA as their ``caBundle``.
- ``sa.key``/``sa.pub``: the service-account token signing key pair.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CERT_DAYS = 3650


@dataclass(frozen=True)
class ClientIdentity:
    """A client certificate subject: user name and groups as the API server will see them."""

    file_stem: str
    common_name: str
    organization: str | None = None

    @property
    def subject(self) -> str:
        org = f"/O={self.organization}" if self.organization else ""
        return f"{org}/CN={self.common_name}"


ADMIN = ClientIdentity("admin", "finetune-admin", "system:masters")
CONTROLLER_MANAGER = ClientIdentity("controller-manager", "system:kube-controller-manager")
SCHEDULER = ClientIdentity("scheduler", "system:kube-scheduler")
APISERVER_KUBELET_CLIENT = ClientIdentity(
    "apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"
)
CLIENT_IDENTITIES = (ADMIN, CONTROLLER_MANAGER, SCHEDULER, APISERVER_KUBELET_CLIENT)
# Serving certificates for loopback servers the API server dials: file stem -> subject.
LOOPBACK_SERVERS = {"processnode": "/CN=system:node:local-0", "kueue-webhook": "/CN=kueue-webhook-service"}


def serving_sans(service_ip: str) -> str:
    """The subjectAltName list of the API server certificate."""
    names = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    dns = [f"DNS:{name}" for name in ["localhost", *names]]
    return ",".join([*dns, "IP:127.0.0.1", f"IP:{service_ip}"])


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the `openssl` command is missing; install it (e.g. `apt-get install openssl`)")
    result = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed in {cwd}: {result.stderr.strip()}")


def _ec_key(name: str, pki: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name, cwd=pki)


def _signed_cert(stem: str, subject: str, extensions: str, pki: Path) -> None:
    _ec_key(f"{stem}.key", pki)
    _openssl("req", "-new", "-key", f"{stem}.key", "-subj", subject, "-out", f"{stem}.csr", cwd=pki)
    ext_file = pki / f"{stem}.ext"
    ext_file.write_text(extensions)
    _openssl(
        "x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", str(CERT_DAYS), "-extfile", ext_file.name, "-out", f"{stem}.crt",
        cwd=pki,
    )  # fmt: skip
    (pki / f"{stem}.csr").unlink()
    ext_file.unlink()


def ensure_pki(pki: Path, service_ip: str) -> None:
    """Create the missing certificates and keys under ``pki`` (existing ones are kept)."""
    pki.mkdir(parents=True, exist_ok=True)
    pki.chmod(0o700)
    if not (pki / "ca.crt").exists():
        _ec_key("ca.key", pki)
        _openssl(
            "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=finetune-local-ca",
            "-days", str(CERT_DAYS), "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "ca.crt",
            cwd=pki,
        )  # fmt: skip
    if not (pki / "apiserver.crt").exists():
        _signed_cert(
            "apiserver",
            "/CN=kube-apiserver",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage=serverAuth\nsubjectAltName={serving_sans(service_ip)}\n",
            pki,
        )
    for identity in CLIENT_IDENTITIES:
        if not (pki / f"{identity.file_stem}.crt").exists():
            _signed_cert(
                identity.file_stem,
                identity.subject,
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=clientAuth\n",
                pki,
            )
    for stem, subject in LOOPBACK_SERVERS.items():
        if not (pki / f"{stem}.crt").exists():
            _signed_cert(
                stem,
                subject,
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
                pki,
            )
    if not (pki / "sa.key").exists():
        _ec_key("sa.key", pki)
        _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
