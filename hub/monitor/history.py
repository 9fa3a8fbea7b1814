"""Bounded in-memory time series for the dashboards (no Prometheus needed to draw a chart).

One ring of timestamps shared by every series; each series a float32 ring of the same length,
NaN where it had no value that round. Memory: `points` x 4 bytes per series. A series with no
value for a whole ring is dropped, so the number of series follows what exists. Lost on a
service restart; Prometheus (and Grafana) keep the long history.
"""
from __future__ import annotations

import math
from array import array

NAN = float("nan")


class History:
    def __init__(self, points: int = 720):
        if points < 2:
            raise ValueError("points must be at least 2")
        self.points = points
        self.times = array("d", [NAN] * points)
        self.pos = -1
        self.rounds = 0
        self.series: dict[str, array] = {}
        self._last: dict[str, int] = {}  # key -> round of its last value

    def record(self, at: float, values: dict[str, float | None]) -> None:
        self.pos = (self.pos + 1) % self.points
        self.rounds += 1
        pos = self.pos
        self.times[pos] = at
        for key, ring in self.series.items():
            ring[pos] = NAN
        for key, value in values.items():
            if value is None:
                continue
            ring = self.series.get(key)
            if ring is None:
                ring = self.series[key] = array("f", [NAN] * self.points)
            ring[pos] = value
            self._last[key] = self.rounds
        stale = [k for k, r in self._last.items() if self.rounds - r >= self.points]
        for key in stale:
            del self.series[key], self._last[key]

    def _order(self) -> list[int]:
        if self.pos < 0:
            return []
        start = (self.pos + 1) % self.points
        return [i for i in (list(range(start, self.points)) + list(range(0, start))) if not math.isnan(self.times[i])]

    def get(self, *keys: str) -> dict:
        """{"t": [unix seconds], key: [value or None], ...}, oldest first (uPlot's data layout)."""
        order = self._order()
        out = {"t": [self.times[i] for i in order]}
        for key in keys:
            ring = self.series.get(key)
            out[key] = [None] * len(order) if ring is None else [
                None if math.isnan(ring[i]) else round(float(ring[i]), 4) for i in order]
        return out

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self.series if k.startswith(prefix))
