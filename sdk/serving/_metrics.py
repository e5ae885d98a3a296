"""`tamis serve`'s ``/metrics``: Prometheus text format, with prometheus-client, one registry per app.

``tamis_requests_total{route,status}`` and ``tamis_request_duration_seconds{route}`` (every request,
answered or refused), ``tamis_batch_size{batcher}`` (texts or pairs per model call),
``tamis_queue_depth{batcher}`` (items waiting for the model, read at scrape time),
``tamis_input_tokens_total`` and ``tamis_request_tokens`` (tokens of the embedded inputs), and
``tamis_requests_in_flight``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["Metrics"]

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_TOKENS = (8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536)
#: routes reported by name; anything else (404s, scanners) is counted as "other"
ROUTES = {"/", "/embed", "/embed_all", "/v1/embeddings", "/embeddings", "/rerank", "/search", "/info", "/health",
          "/metrics", "/tokenize", "/decode", "/v1/models"}


class Metrics:
    """The app's counters and histograms, and the text ``/metrics`` serves."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("tamis_requests", "HTTP requests by route and status", ["route", "status"], registry=r)
        self.duration = Histogram("tamis_request_duration_seconds", "HTTP request latency by route", ["route"],
                                  buckets=_LATENCY, registry=r)
        self.in_flight = Gauge("tamis_requests_in_flight", "HTTP requests being answered", registry=r)
        self.batch_size = Histogram("tamis_batch_size", "items per model call", ["batcher"], buckets=_SIZES, registry=r)
        self.queue_depth = Gauge("tamis_queue_depth", "items waiting for the model", ["batcher"], registry=r)
        self.tokens = Counter("tamis_input_tokens", "tokens of embedded inputs", registry=r)
        self.request_tokens = Histogram("tamis_request_tokens", "tokens per embed request", buckets=_TOKENS, registry=r)

    def watch(self, batchers: Mapping[str, Any]) -> None:
        """Report the batch sizes and queue depths of ``batchers`` (MicroBatchers by name)."""
        for name, b in batchers.items():
            if b is None:
                continue
            hist = self.batch_size.labels(batcher=name)
            b.on_batch = hist.observe
            self.queue_depth.labels(batcher=name).set_function(b.queue_depth)

    def observe(self, path: str, status: int, seconds: float) -> None:
        route = path if path in ROUTES else "other"
        self.requests.labels(route=route, status=str(status)).inc()
        self.duration.labels(route=route).observe(seconds)

    def count_tokens(self, counts: list[int]) -> None:
        total = sum(counts)
        self.tokens.inc(total)
        self.request_tokens.observe(total)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
