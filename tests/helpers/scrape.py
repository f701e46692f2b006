"""Scrape a live server's ``/metrics`` and read it with prometheus_client's own parser."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

__all__ = ["Scrape", "scrape"]

# The sample names a family of each type can export (text format).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "untyped": ("",),
    "info": ("_info",),
}


@dataclass(frozen=True)
class Scrape:
    """One scrape: every sample, and the families (declared even when they have no sample yet)."""

    samples: list[Sample]
    family_types: dict[str, str]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` whose labels include ``labels`` (0 when none matches)."""
        return sum(
            sample.value
            for sample in self.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def exported_names(self) -> set[str]:
        """Every sample name the server can export, from the declared families and their types."""
        names = {sample.name for sample in self.samples}
        for family, kind in self.family_types.items():
            names.update(family + suffix for suffix in _SUFFIXES.get(kind, ("",)))
        return names


def scrape(metrics_url: str, *, accept: str | None = None) -> Scrape:
    """GET ``http://{metrics_url}/metrics`` and parse it (Prometheus text format)."""
    headers = {"Accept": accept} if accept else {}
    response = httpx.get(f"http://{metrics_url}/metrics", headers=headers, timeout=10)
    response.raise_for_status()
    samples: list[Sample] = []
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(response.text):
        types[family.name] = family.type
        samples.extend(family.samples)
    return Scrape(samples=samples, family_types=types)
