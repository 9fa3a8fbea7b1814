"""Validation against the official Kubernetes schema (kubernetes-validate, strict: unknown fields fail)."""
from __future__ import annotations

import kubernetes_validate

from astrago.spawners.manifests import TARGET_KUBERNETES_VERSION


def validate(obj: dict) -> None:
    """Raise kubernetes_validate's ValidationError when `obj` is not a valid object at the target version."""
    kubernetes_validate.validate(obj, TARGET_KUBERNETES_VERSION, strict=True)
