"""Writes a pod's status only when it changed, with the pod UID as precondition.

Why: a kubelet that rewrites status on every loop causes write storms; one that replaces the
whole status clobbers fields others own (qosClass, DisruptionTarget conditions). A
strategic-merge patch of the status subresource merges conditions and container statuses by
key, and ``metadata.uid`` in the patch makes it fail instead of touching a new pod that reuses
the name. After a failed write the next attempt waits a second.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from localcluster.processnode.kube import ApiException, Kube

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0


class StatusWriter:
    def __init__(
        self, kube: Kube, namespace: str, name: str, uid: str, conditions: list[dict[str, Any]]
    ) -> None:
        self._kube = kube
        self._where = (namespace, name)
        self._uid = uid
        self.conditions = conditions  # the last conditions the API has, for transition times
        self.last: dict[str, Any] | None = None
        self._retry_at = 0.0

    def write(self, status: dict[str, Any], force: bool = False) -> bool:
        """True when the API holds ``status`` (already or now)."""
        if status == self.last:
            return True
        if not force and time.monotonic() < self._retry_at:
            return False
        namespace, name = self._where
        try:
            self._kube.patch_pod_status(namespace, name, {"metadata": {"uid": self._uid}, "status": status})
        except ApiException as error:
            self._retry_at = time.monotonic() + RETRY_SECONDS
            if error.status not in (404, 409):
                log.warning("status of %s/%s not written (%s): %s", namespace, name, error.status, error.body)
            return False
        except Exception as error:  # API server unreachable: try again shortly
            self._retry_at = time.monotonic() + RETRY_SECONDS
            log.warning("status of %s/%s not written: %s", namespace, name, error)
            return False
        self.last = status
        self.conditions = status["conditions"]
        return True
