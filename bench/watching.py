"""Record when things happen, from the API server's watch stream, in this process's clock.

Why a watch and not object timestamps: ``creationTimestamp`` and condition times have one-second
resolution and are written by different components; the benchmark wants sub-second times on one
clock. A thread per watched collection keeps the first moment each milestone of each object was
seen (e.g. pod ``created``, ``running``, ``succeeded``). Events are read raw (``deserialize=False``):
turning thousands of pod events into client models would cost the 2 shared cores more than the
system under test.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from kubernetes import watch

Classifier = Callable[[dict[str, Any]], Iterable[tuple[str, str]]]


class MilestoneRecorder:
    """Watches ``list_function(**kwargs)`` in a thread; ``classify(obj)`` names (key, milestone) pairs."""

    def __init__(self, list_function: Callable[..., Any], classify: Classifier, **kwargs: Any):
        self._list = list_function
        self._classify = classify
        self._kwargs = kwargs
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.errors: list[str] = []

    def start(self) -> MilestoneRecorder:
        self._thread.start()
        if not self._started.wait(60):
            raise TimeoutError(f"the watch of {self._list.__name__} did not start within 60 s")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        self._thread.join(timeout=10)

    def _record(self, obj: dict[str, Any], now: float) -> None:
        with self._lock:
            for key in self._classify(obj):
                self._seen.setdefault(key, now)

    def _run(self) -> None:
        initial = self._list(**self._kwargs, _preload_content=False)
        listing = json.loads(initial.data)
        now = time.monotonic()
        for item in listing.get("items") or []:
            self._record(item, now)
        version = listing["metadata"]["resourceVersion"]
        self._started.set()
        while not self._stop.is_set():
            self._watch = watch.Watch()
            try:
                for event in self._watch.stream(
                    self._list,
                    resource_version=version,
                    timeout_seconds=600,
                    allow_watch_bookmarks=True,
                    deserialize=False,
                    **self._kwargs,
                ):
                    obj = event["object"]
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._record(obj, time.monotonic())
                    if self._stop.is_set():
                        break
            except Exception as error:  # a broken stream is resumed; note it in the results
                if self._stop.is_set():
                    break
                self.errors.append(str(error)[:200])
                if "410" in str(error) or len(self.errors) > 50:
                    break

    def times(self, milestone: str) -> dict[str, float]:
        """Key -> first time ``milestone`` was seen (time.monotonic())."""
        with self._lock:
            return {key: at for (key, name), at in self._seen.items() if name == milestone}

    def count(self, milestone: str) -> int:
        with self._lock:
            return sum(1 for (_, name) in self._seen if name == milestone)


def pod_milestones(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """A Job's pod: keyed ``<job>/<completion index>``; created, running, succeeded."""
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    job = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
    if not job:
        return []
    key = f"{job}/{annotations.get('batch.kubernetes.io/job-completion-index', metadata.get('name'))}"
    return phase_milestones(key, obj)


def phase_milestones(key: str, pod: dict[str, Any]) -> list[tuple[str, str]]:
    """A pod under ``key``: created, running (Running or later), succeeded — by its phase."""
    phase = (pod.get("status") or {}).get("phase")
    found = [(key, "created")]
    if phase in ("Running", "Succeeded"):
        found.append((key, "running"))
    if phase == "Succeeded":
        found.append((key, "succeeded"))
    return found


def condition_milestones(obj: dict[str, Any], condition_type: str, milestone: str) -> list[tuple[str, str]]:
    """An object by name: created, and ``milestone`` once its ``condition_type`` condition is True."""
    name = (obj.get("metadata") or {}).get("name")
    found = [(name, "created")]
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == condition_type and condition.get("status") == "True":
            found.append((name, milestone))
    return found


def job_milestones(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """A batch/v1 Job: created, complete (condition Complete=True)."""
    return condition_milestones(obj, "Complete", "complete")


def finetunejob_milestones(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """A FineTuneJob: created, succeeded (condition Succeeded=True)."""
    name = (obj.get("metadata") or {}).get("name")
    found = [(name, "created")]
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Succeeded" and condition.get("status") == "True":
            found.append((name, "succeeded"))
    return found
