"""Operator settings from command-line flags and environment variables.

Every setting is declared once here, with its flag, its environment variable and its meaning, so that
`finetune-operator --help`, docs/operator.md and the Helm chart can all be checked against one place.
A flag wins over the environment; the environment wins over the default.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence

DEFAULT_IMAGE = "ghcr.io/finetune-operator/finetune-trainer:0.1.0"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the operator needs to know that is not in a FineTuneJob."""

    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means all namespaces (cluster-wide)."""
    default_image: str = DEFAULT_IMAGE
    """Trainer image used when a FineTuneJob has no spec.image."""
    default_checkpoint_uri: str = ""
    """Prefix for checkpoints when a FineTuneJob has no spec.checkpoint.uri: <prefix>/<namespace>/<name>."""
    metrics_port: int = 8080
    """Port of the operator's own /metrics endpoint (0 disables it)."""
    metrics_bind_address: str = "127.0.0.1"
    """Address the /metrics endpoint binds to; 0.0.0.0 inside a cluster so Prometheus can scrape it."""
    log_level: str = "INFO"
    """Log level of the operator's JSON logs: DEBUG, INFO, WARNING or ERROR."""
    restart_backoff_max_seconds: float = 300.0
    """Cap of the exponential backoff between a failed attempt and the next (its base is the spec's
    runPolicy.backoffSeconds: base * 2^(failures-1))."""
    stall_after_seconds: float = 900.0
    """A running job whose training step has not advanced for this long gets Stalled=True."""
    progress_interval_seconds: float = 10.0
    """How often rank 0's metrics are read for status.progress while a job runs."""
    progress_max_backoff_seconds: float = 120.0
    """Cap of the exponential backoff between reads while rank 0's metrics are unreachable."""
    checkpoint_event_interval_seconds: float = 60.0
    """At most one CheckpointCommitted event per job in this many seconds (status is always current)."""
    resync_seconds: float = 300.0
    """Every job is reconciled at least this often, even when nothing changed."""
    reconcile_workers: int = 16
    """Reconciles run concurrently for different jobs (never for the same job)."""
    peering_name: str = "finetune-operator"
    """Name of the Kopf peering object shared by the operator's replicas."""
    standalone: bool = False
    """Run without peering (development only: two standalone operators would fight)."""
    liveness_endpoint: str = ""
    """Kopf's liveness endpoint, e.g. http://0.0.0.0:8081/healthz; empty disables it."""
    # --- policies for shared clusters (job/policy.py; docs/operator.md, "Security") --------------
    allowed_images: tuple[str, ...] = ()
    """Images a job may set in spec.image (globs, or prefixes ending at ':', '@' or '/'); empty: the
    repository of default_image. The default image itself is always allowed."""
    storage_prefixes: tuple[str, ...] = ()
    """Per-namespace storage policy: every s3/gs/az URI of a job must lie under one of these, with
    {namespace} replaced by the job's namespace (e.g. s3://bucket/{namespace}/); empty: no policy."""
    allowed_priority_classes: tuple[str, ...] = ("*",)
    """PriorityClasses (globs) a job may name in spec.resources.priorityClassName; '*' allows any."""
    allow_blanket_tolerations: bool = False
    """Allow tolerations with operator Exists and no key (they tolerate every taint)."""

    @property
    def all_namespaces(self) -> bool:
        return not self.namespaces


DEFAULTS = Settings()
"""Each default is declared once, on the dataclass; the parser shows and uses the same values."""


def _env_list(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _positive(name: str, value: float) -> float:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}; pass a non-negative number of seconds")
    return value


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """The command line; defaults come from `env` so --help shows what is in effect."""

    def env_or(key: str, default: object) -> str:
        return env.get(key, str(default))

    parser = argparse.ArgumentParser(
        prog="finetune-operator",
        description="Run the FineTuneJob operator (Kopf) against the current kubeconfig or in-cluster.",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        dest="namespaces",
        action="append",
        default=None,
        help="watch this namespace (repeatable); env FINETUNE_NAMESPACES=a,b; default: all namespaces",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)"
    )
    parser.add_argument(
        "--default-image",
        default=env_or("FINETUNE_DEFAULT_IMAGE", DEFAULTS.default_image),
        help="trainer image for jobs without spec.image (env FINETUNE_DEFAULT_IMAGE)",
    )
    parser.add_argument(
        "--default-checkpoint-uri",
        default=env_or("FINETUNE_DEFAULT_CHECKPOINT_URI", DEFAULTS.default_checkpoint_uri),
        help="checkpoint prefix for jobs without spec.checkpoint.uri (env FINETUNE_DEFAULT_CHECKPOINT_URI)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(env_or("FINETUNE_METRICS_PORT", DEFAULTS.metrics_port)),
        help="port of the operator's /metrics, 0 disables (env FINETUNE_METRICS_PORT)",
    )
    parser.add_argument(
        "--metrics-bind-address",
        default=env_or("FINETUNE_METRICS_BIND_ADDRESS", DEFAULTS.metrics_bind_address),
        help="address /metrics binds to (env FINETUNE_METRICS_BIND_ADDRESS; default 127.0.0.1)",
    )
    parser.add_argument(
        "--log-level",
        default=env_or("FINETUNE_LOG_LEVEL", DEFAULTS.log_level).upper(),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="log level (env FINETUNE_LOG_LEVEL)",
    )
    parser.add_argument(
        "--restart-backoff-max-seconds",
        type=float,
        default=float(env_or("FINETUNE_RESTART_BACKOFF_MAX_SECONDS", DEFAULTS.restart_backoff_max_seconds)),
        help="cap of the restart backoff (env FINETUNE_RESTART_BACKOFF_MAX_SECONDS)",
    )
    parser.add_argument(
        "--stall-after-seconds",
        type=float,
        default=float(env_or("FINETUNE_STALL_AFTER_SECONDS", DEFAULTS.stall_after_seconds)),
        help="seconds without step progress before Stalled=True (env FINETUNE_STALL_AFTER_SECONDS)",
    )
    parser.add_argument(
        "--progress-interval-seconds",
        type=float,
        default=float(env_or("FINETUNE_PROGRESS_INTERVAL_SECONDS", DEFAULTS.progress_interval_seconds)),
        help="read rank 0's metrics this often while a job runs (env FINETUNE_PROGRESS_INTERVAL_SECONDS)",
    )
    parser.add_argument(
        "--progress-max-backoff-seconds",
        type=float,
        default=float(env_or("FINETUNE_PROGRESS_MAX_BACKOFF_SECONDS", DEFAULTS.progress_max_backoff_seconds)),
        help="backoff cap while rank 0's metrics are unreachable (env FINETUNE_PROGRESS_MAX_BACKOFF_SECONDS)",
    )
    parser.add_argument(
        "--checkpoint-event-interval-seconds",
        type=float,
        default=float(
            env_or("FINETUNE_CHECKPOINT_EVENT_INTERVAL_SECONDS", DEFAULTS.checkpoint_event_interval_seconds)
        ),
        help="at most one CheckpointCommitted event per job this often "
        "(env FINETUNE_CHECKPOINT_EVENT_INTERVAL_SECONDS)",
    )
    parser.add_argument(
        "--resync-seconds",
        type=float,
        default=float(env_or("FINETUNE_RESYNC_SECONDS", DEFAULTS.resync_seconds)),
        help="reconcile every job at least this often (env FINETUNE_RESYNC_SECONDS)",
    )
    parser.add_argument(
        "--reconcile-workers",
        type=int,
        default=int(env_or("FINETUNE_RECONCILE_WORKERS", DEFAULTS.reconcile_workers)),
        help="concurrent reconciles of different jobs (env FINETUNE_RECONCILE_WORKERS)",
    )
    peering = parser.add_mutually_exclusive_group()
    peering.add_argument(
        "--peering",
        dest="peering_name",
        default=env_or("FINETUNE_PEERING", DEFAULTS.peering_name),
        help="Kopf peering object shared by the replicas (env FINETUNE_PEERING)",
    )
    peering.add_argument(
        "--standalone", action="store_true", help="no peering (development only; one replica at most)"
    )
    parser.add_argument(
        "--liveness",
        dest="liveness_endpoint",
        default=env_or("FINETUNE_LIVENESS_ENDPOINT", DEFAULTS.liveness_endpoint),
        help="Kopf liveness endpoint URL, e.g. http://0.0.0.0:8081/healthz (env FINETUNE_LIVENESS_ENDPOINT)",
    )
    policy = parser.add_argument_group("policies for shared clusters (see docs/operator.md, Security)")
    policy.add_argument(
        "--allowed-images",
        action="append",
        default=None,
        help="images jobs may set in spec.image: globs, or prefixes ending at ':', '@' or '/' "
        "(repeatable or comma-separated; env FINETUNE_ALLOWED_IMAGES; default: the default image's "
        "repository)",
    )
    policy.add_argument(
        "--storage-prefix",
        dest="storage_prefixes",
        action="append",
        default=None,
        help="every s3/gs/az URI of a job must lie under one of these, {namespace} filled in, e.g. "
        "s3://bucket/{namespace}/ (repeatable or comma-separated; env FINETUNE_STORAGE_PREFIXES; "
        "default: no policy)",
    )
    policy.add_argument(
        "--allowed-priority-classes",
        action="append",
        default=None,
        help="PriorityClasses (globs) jobs may use; '' allows none (repeatable or comma-separated; env "
        "FINETUNE_ALLOWED_PRIORITY_CLASSES; default: *)",
    )
    policy.add_argument(
        "--allow-blanket-tolerations",
        action="store_true",
        default=env.get("FINETUNE_ALLOW_BLANKET_TOLERATIONS", "").lower() in ("1", "true", "yes"),
        help="allow tolerations with operator Exists and no key (env FINETUNE_ALLOW_BLANKET_TOLERATIONS)",
    )
    return parser


def _list_setting(
    values: Sequence[str] | None, env: Mapping[str, str], key: str, default: tuple[str, ...]
) -> tuple[str, ...]:
    """A list flag: repeated and/or comma-separated values; else the env variable; else `default`."""
    if values is None:
        if key not in env:
            return default
        values = [env[key]]
    parts = [part.strip() for value in values for part in value.split(",")]
    return tuple(dict.fromkeys(part for part in parts if part))


def parse_settings(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from `argv` (default sys.argv[1:]) and `env` (default os.environ)."""
    env = os.environ if env is None else env
    args = build_parser(env).parse_args(argv)
    if args.all_namespaces:
        namespaces: tuple[str, ...] = ()
    elif args.namespaces:
        namespaces = tuple(dict.fromkeys(args.namespaces))
    else:
        namespaces = _env_list(env.get("FINETUNE_NAMESPACES"))
    if not 0 <= args.metrics_port <= 65535:
        raise ValueError(f"--metrics-port must be 0..65535, got {args.metrics_port}")
    if args.reconcile_workers < 1:
        raise ValueError(f"--reconcile-workers must be >= 1, got {args.reconcile_workers}")
    return Settings(
        namespaces=namespaces,
        default_image=args.default_image,
        default_checkpoint_uri=args.default_checkpoint_uri.rstrip("/"),
        metrics_port=args.metrics_port,
        metrics_bind_address=args.metrics_bind_address,
        log_level=args.log_level,
        restart_backoff_max_seconds=_positive(
            "--restart-backoff-max-seconds", args.restart_backoff_max_seconds
        ),
        stall_after_seconds=_positive("--stall-after-seconds", args.stall_after_seconds),
        progress_interval_seconds=max(0.5, args.progress_interval_seconds),
        progress_max_backoff_seconds=_positive(
            "--progress-max-backoff-seconds", args.progress_max_backoff_seconds
        ),
        checkpoint_event_interval_seconds=_positive(
            "--checkpoint-event-interval-seconds", args.checkpoint_event_interval_seconds
        ),
        resync_seconds=max(1.0, args.resync_seconds),
        reconcile_workers=args.reconcile_workers,
        peering_name=args.peering_name,
        standalone=args.standalone,
        liveness_endpoint=args.liveness_endpoint,
        allowed_images=_list_setting(args.allowed_images, env, "FINETUNE_ALLOWED_IMAGES", ()),
        storage_prefixes=_list_setting(args.storage_prefixes, env, "FINETUNE_STORAGE_PREFIXES", ()),
        allowed_priority_classes=_list_setting(
            args.allowed_priority_classes,
            env,
            "FINETUNE_ALLOWED_PRIORITY_CLASSES",
            DEFAULTS.allowed_priority_classes,
        ),
        allow_blanket_tolerations=args.allow_blanket_tolerations,
    )
