"""``python -m localcluster.processnode``: run the process node until SIGTERM/SIGINT.

The command line is a contract with ``localcluster`` (the cluster scripts start exactly
``--kubeconfig PATH --node-name local-0 --state-dir DIR --log-dir DIR``); the other options
have defaults that fit it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from localcluster.processnode.daemon import Options, ProcessNode
from localcluster.processnode.ipam import DEFAULT_POD_CIDR
from localcluster.processnode.logserver import TLSFiles


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m localcluster.processnode",
        description="Run the pods bound to one Node as local processes with their own 127.x addresses.",
    )
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of the cluster to join")
    parser.add_argument("--node-name", default="local-0", help="name of the Node to register")
    parser.add_argument("--state-dir", required=True, type=Path, help="per-pod state, hosts files, volumes")
    parser.add_argument(
        "--log-dir", required=True, type=Path, help="container logs: <ns>_<pod>_<uid>/<container>.log"
    )
    parser.add_argument("--pod-cidr", default=DEFAULT_POD_CIDR, help="loopback range pod addresses come from")
    parser.add_argument("--cpu", type=int, default=None, help="cpu capacity to report (default: host cores)")
    parser.add_argument(
        "--shutdown-grace-seconds", type=float, default=15.0, help="longest wait for pods to stop on shutdown"
    )
    parser.add_argument(
        "--kubelet-port", type=int, default=0, help="serve the kubelet log endpoint here (0: do not)"
    )
    parser.add_argument("--tls-cert-file", type=Path, help="kubelet serving certificate (cluster CA)")
    parser.add_argument("--tls-private-key-file", type=Path, help="its key")
    parser.add_argument("--client-ca-file", type=Path, help="CA of the client certificates to accept")
    args = parser.parse_args(argv)
    tls_files = (args.tls_cert_file, args.tls_private_key_file, args.client_ca_file)
    if args.kubelet_port and not all(tls_files):
        parser.error(
            "--kubelet-port needs --tls-cert-file, --tls-private-key-file and --client-ca-file "
            "(the endpoint is TLS with client certificates, like a kubelet's)"
        )
    tls = TLSFiles(*tls_files) if all(tls_files) else None
    return Options(
        kubeconfig=args.kubeconfig,
        node_name=args.node_name,
        state_dir=args.state_dir.resolve(),
        log_dir=args.log_dir.resolve(),
        pod_cidr=args.pod_cidr,
        cpu=args.cpu,
        shutdown_grace_seconds=args.shutdown_grace_seconds,
        kubelet_port=args.kubelet_port,
        kubelet_tls=tls,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    options = parse_args(argv)
    node = ProcessNode(options)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: node.stop())
    node.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
