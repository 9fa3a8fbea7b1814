"""The `/services/astrago/metrics` document: the service's one prometheus_client registry in
Prometheus text format 0.0.4.

The monitor's own families (`families.FleetFamilies`) are `RenderedFamily` objects: their text is
written once, when a round changes them, and a scrape only concatenates it. Any other collector
in the registry (the uploads area's counters, every `MetricsSource`) is written by
prometheus_client's own `generate_latest`. Rendering runs in a worker thread, never on the event
loop (`render_async`).
"""
from __future__ import annotations

import asyncio
from typing import Callable, Iterable

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})


def _esc(value) -> str:
    """A label value as the text format writes it."""
    s = str(value)
    if "\\" in s or '"' in s or "\n" in s:
        return s.translate(_ESCAPES)
    return s


def _num(v) -> str:
    """A sample value as the document has always written it: integers without a point."""
    if type(v) is float and v - v == 0.0:  # finite: the common case first
        return repr(v)
    if v is True:
        return "1"
    if v is False:
        return "0"
    if isinstance(v, int):
        return str(v)
    if v != v:
        return "NaN"
    if v == float("inf"):
        return "+Inf"
    if v == float("-inf"):
        return "-Inf"
    return repr(float(v))


class RenderedFamily(Metric):
    """A metric family that carries its own text-format lines (`exposition`, bytes).

    Its `samples` are made only when something reads them (`get_sample_value`, an OpenMetrics
    encoder): a scrape never does, so a family of 10,000 series costs no Sample objects."""

    def __init__(self, name: str, documentation: str, typ: str, exposition: bytes,
                 make_samples: Callable[[], Iterable]):
        super().__init__(name, documentation, typ)
        self.exposition = exposition
        self._make_samples = make_samples
        self._samples = None

    @property
    def samples(self) -> list:
        if self._samples is None:
            self._samples = list(self._make_samples())
        return self._samples

    @samples.setter
    def samples(self, value) -> None:  # Metric.__init__ sets [], which must not stop the lazy build
        self._samples = None if value == [] else list(value)


class _OneFamily:
    """A collector of one family, so prometheus_client writes exactly that family."""

    def __init__(self, family):
        self.family = family

    def collect(self):
        return [self.family]


def generate(registry) -> bytes:
    """The registry's document: rendered families as they are, the others by prometheus_client."""
    out = []
    for family in registry.collect():
        text = getattr(family, "exposition", None)
        out.append(text if text is not None else generate_latest(_OneFamily(family)))
    return b"".join(out)


async def render_async(registry) -> bytes:
    """`generate` in a worker thread: a scrape of 100,000 series never blocks the event loop."""
    return await asyncio.to_thread(generate, registry)


def sample_values(sources, names) -> dict[str, float]:
    """The unlabelled samples called `names` among the families of `sources` (collectors), e.g. the
    uploads area's byte counter for the dashboards; a name no source has is absent."""
    wanted, found = set(names), {}
    for source in sources:
        for family in source.collect():
            for sample in family.samples:
                if sample.name in wanted and not sample.labels:
                    found.setdefault(sample.name, sample.value)
    return found
