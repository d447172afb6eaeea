"""Cluster policies the operator enforces before it starts an attempt (issue 13: shared clusters).

A FineTuneJob is written by a tenant; its worker pods run with that namespace's storage Secret and
on the cluster's GPUs. The CRD validates the *shape* of a spec; these checks say whether the
platform team lets it run at all: which images (the image receives the Secret), which storage
prefixes a namespace may read and write (so one tenant cannot read or overwrite another's models
and checkpoints even when credentials are shared), which PriorityClasses, and whether a toleration
may match every taint. Each check is pure: (spec, namespace, settings) -> a Refusal that names the
offending value and the policy, which the reconcile rules turn into Failed with that reason.

Also here: which API answers to creating a child are permanent (a 4xx that retrying cannot fix), so
a job ends Failed with the API's message instead of retrying forever.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from finetune_api.constants import CREDENTIAL_SCHEMES
from finetune_operator import reasons
from finetune_operator.job.builders import effective_image, trainer_spec
from finetune_operator.job.jobview import JobView
from finetune_operator.settings import Settings

GLOB_CHARACTERS = frozenset("*?[")
REFERENCE_SEPARATORS = (":", "@", "/")
"""An image pattern without glob characters is a prefix that ends at one of these (or the end), so
`registry/team/trainer` allows `registry/team/trainer:1` but not `registry/team/trainer-evil:1`."""


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a job may not run: the Failed condition's reason and a message naming value and policy."""

    reason: str
    message: str


def image_repository(image: str) -> str:
    """The repository of an image reference: without its digest (@sha256:...) and tag (:1.0)."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def _is_glob(pattern: str) -> bool:
    return any(character in GLOB_CHARACTERS for character in pattern)


def image_matches(image: str, pattern: str) -> bool:
    """True when `image` is allowed by `pattern` (a glob over the whole reference, or a prefix)."""
    if _is_glob(pattern):
        return fnmatch.fnmatchcase(image, pattern)
    if image == pattern:
        return True
    if not image.startswith(pattern):
        return False
    return pattern.endswith(REFERENCE_SEPARATORS) or image[len(pattern)] in REFERENCE_SEPARATORS


def allowed_image_patterns(allowed: Iterable[str], default_image: str) -> tuple[str, ...]:
    """The image policy in effect: the configured patterns, or the default image's repository."""
    patterns = tuple(allowed)
    return patterns or (image_repository(default_image),)


def check_image(image: str, allowed: Iterable[str], default_image: str) -> Refusal | None:
    """The default trainer image always runs (the platform chose it); any other must match a pattern."""
    if image == default_image:
        return None
    patterns = allowed_image_patterns(allowed, default_image)
    if any(image_matches(image, pattern) for pattern in patterns):
        return None
    return Refusal(
        reasons.IMAGE_NOT_ALLOWED,
        f"spec.image {image!r} is not allowed by the operator's image policy "
        f"(--allowed-images {','.join(patterns)}); use an image matching it, or ask the platform "
        "team to allow this one",
    )


def storage_uris(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field path, URI) of every storage location the trainer reads or writes."""
    model = spec.get("model") or {}
    dataset = spec.get("dataset") or {}
    checkpoint = spec.get("checkpoint") or {}
    output = spec.get("output") or {}
    candidates = [
        ("spec.model.uri", model.get("uri")),
        ("spec.dataset.train", dataset.get("train")),
        ("spec.dataset.validation", dataset.get("validation")),
        ("spec.dataset.test", dataset.get("test")),
        ("spec.checkpoint.uri", checkpoint.get("uri")),
        ("spec.output.uri", output.get("uri")),
    ]
    return [(path, uri) for path, uri in candidates if uri]


def _prefix_for(template: str, namespace: str) -> str:
    prefix = template.replace("{namespace}", namespace)
    return prefix if prefix.endswith("/") else prefix + "/"


def _escapes(uri: str) -> bool:
    """A path segment of '.' or '..' could leave the prefix once a client normalises the path."""
    path = uri.split("://", 1)[-1]
    return any(segment in (".", "..") for segment in path.split("/"))


def uri_allowed(uri: str, prefixes: Iterable[str]) -> bool:
    """True when `uri` is one of `prefixes` (ending in '/') or lies below one."""
    if _escapes(uri):
        return False
    return any(uri == prefix.rstrip("/") or uri.startswith(prefix) for prefix in prefixes)


def check_storage(spec: Mapping[str, Any], namespace: str, templates: Iterable[str]) -> Refusal | None:
    """Every s3/gs/az URI must lie under a prefix of `templates` with {namespace} filled in.

    hf://, file:// and pvc:// are not object storage shared between tenants (the Hub is public and
    read-only here, file:// is the container's own filesystem, a claim belongs to the namespace), so
    the policy leaves them alone. No templates: no policy.
    """
    templates = tuple(templates)
    if not templates:
        return None
    prefixes = [_prefix_for(template, namespace) for template in templates]
    for path, uri in storage_uris(spec):
        if uri.split("://", 1)[0] not in CREDENTIAL_SCHEMES:
            continue
        if not uri_allowed(uri, prefixes):
            return Refusal(
                reasons.STORAGE_NOT_ALLOWED,
                f"{path} {uri!r} is outside the storage allowed for namespace {namespace} "
                f"(--storage-prefix: {', '.join(prefixes)}); use a URI under it",
            )
    return None


def check_priority_class(name: str | None, allowed: Iterable[str]) -> Refusal | None:
    """spec.resources.priorityClassName must match one of `allowed` (globs; '*' allows any)."""
    allowed = tuple(allowed)
    if not name or any(fnmatch.fnmatchcase(name, pattern) for pattern in allowed):
        return None
    return Refusal(
        reasons.PRIORITY_CLASS_NOT_ALLOWED,
        f"spec.resources.priorityClassName {name!r} is not allowed by the operator "
        f"(--allowed-priority-classes {','.join(allowed) or '(none)'}); use an allowed class or remove it",
    )


def is_blanket(toleration: Mapping[str, Any]) -> bool:
    """operator Exists without a key tolerates every taint: it lets a pod onto any node."""
    return toleration.get("operator") == "Exists" and not toleration.get("key")


def check_tolerations(tolerations: Iterable[Mapping[str, Any]], allow_blanket: bool) -> Refusal | None:
    if allow_blanket:
        return None
    for index, toleration in enumerate(tolerations):
        if is_blanket(toleration):
            return Refusal(
                reasons.TOLERATION_NOT_ALLOWED,
                f"spec.resources.tolerations[{index}] tolerates every taint (operator Exists without a "
                "key), which the operator refuses (--allow-blanket-tolerations is off); name the taint's "
                "key",
            )
    return None


def refusal(
    spec: Mapping[str, Any],
    namespace: str,
    *,
    image: str,
    default_image: str,
    allowed_images: Iterable[str],
    storage_prefixes: Iterable[str],
    allowed_priority_classes: Iterable[str],
    allow_blanket_tolerations: bool,
) -> Refusal | None:
    """The first policy `spec` breaks (image, storage, priority class, tolerations), or None."""
    resources = spec.get("resources") or {}
    return (
        check_image(image, allowed_images, default_image)
        or check_storage(spec, namespace, storage_prefixes)
        or check_priority_class(resources.get("priorityClassName"), allowed_priority_classes)
        or check_tolerations(resources.get("tolerations") or [], allow_blanket_tolerations)
    )


PERMANENT_STATUSES = frozenset({400, 403, 413, 422})
"""4xx answers to creating a child that retrying cannot fix (invalid object, refused by admission or
by policy). 409 (exists) is success for us, 429 and 5xx are transient, 404 (namespace going away)
resolves itself."""


def permanent_rejection(status: int | None, message: str) -> bool:
    """True when the API's answer to a create means the child can never be created as built.

    403 "exceeded quota" is the exception: quota frees up when other workloads finish.
    """
    if status not in PERMANENT_STATUSES:
        return False
    return not (status == 403 and "exceeded quota" in message)


def job_refusal(job: JobView, settings: Settings) -> Refusal | None:
    """The operator's policies applied to what the workers would get (the spec with its defaults)."""
    return refusal(
        trainer_spec(job, settings),
        job.namespace,
        image=effective_image(job, settings),
        default_image=settings.default_image,
        allowed_images=settings.allowed_images,
        storage_prefixes=settings.storage_prefixes,
        allowed_priority_classes=settings.allowed_priority_classes,
        allow_blanket_tolerations=settings.allow_blanket_tolerations,
    )
