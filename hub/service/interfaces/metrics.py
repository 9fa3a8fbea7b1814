"""Prometheus metrics an area exposes. Many-valued: every area may provide one; the monitor
area registers each in the service's one registry (`context.all(MetricsSource)`)."""
from __future__ import annotations

from typing import Iterable, Protocol, runtime_checkable


@runtime_checkable
class MetricsSource(Protocol):
    def collect(self) -> Iterable:
        """prometheus_client metric families (a prometheus_client custom Collector)."""
