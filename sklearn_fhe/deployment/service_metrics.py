"""What a service reports on ``GET /metrics``, in Prometheus' text format (prometheus-client).

Each service process has its own registry and reports its own figures: a monitoring system
scrapes every process (or replica) and sums. Names, all prefixed ``sklearn_fhe_``:

================================  ===========================================================
``requests_total``                requests by ``endpoint`` and ``status`` (401s included)
``request_seconds``               latency histogram by ``endpoint``
``rows_total``                    rows predicted (encrypted rows run)
``request_bytes_total``           bytes received, by ``endpoint``
``response_bytes_total``          bytes sent, by ``endpoint``
``key_sets`` / ``key_bytes``      key sets held and their bytes, by ``tier`` (memory, disk)
``pending_requests``              requests running or waiting for a worker (queue depth)
``worker_part_loads_total``       server parts / key sets loaded by workers, by ``kind``
``worker_bytes_total``            bytes sent to workers, by ``what`` (ciphertexts, parts)
================================  ===========================================================

plus the ``process_*`` figures of this process (resident memory, CPU seconds, open files).
"""

from __future__ import annotations

from typing import Callable, Optional

try:
    from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge,
                                   Histogram, ProcessCollector, generate_latest)
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError("The service's /metrics needs prometheus-client, in the serve extra: "
                      "pip install 'sklearn_fhe[serve]'.") from error

#: Endpoints counted by name; any other path is counted as "other".
ENDPOINTS = ("/health", "/model", "/keys", "/predict", "/metrics")
#: Latency buckets (seconds): a /health answer to a large encrypted batch.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class ServiceMetrics:
    """The metrics of one service process, in a registry of their own.

    Parameters
    ----------
    key_stats : callable
        Returns ``{"memory": (sets, bytes), "disk": (sets, bytes)}`` (disk absent without a
        key-store directory); read at each scrape.
    pending : callable
        Returns the requests running or waiting now.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, key_stats: Callable[[], dict], pending: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        options = {"namespace": "sklearn_fhe", "registry": self.registry}
        self.requests = Counter("requests", "Requests answered, by endpoint and status.",
                                ["endpoint", "status"], **options)
        self.seconds = Histogram("request_seconds", "Seconds to answer a request, by endpoint.",
                                 ["endpoint"], buckets=BUCKETS, **options)
        self.rows = Counter("rows", "Encrypted rows run.", **options)
        self.bytes_in = Counter("request_bytes", "Bytes received, by endpoint.", ["endpoint"],
                                **options)
        self.bytes_out = Counter("response_bytes", "Bytes sent, by endpoint.", ["endpoint"],
                                 **options)
        self.worker_loads = Counter("worker_part_loads", "Server parts and key sets loaded by "
                                    "workers, by kind.", ["kind"], **options)
        self.worker_bytes = Counter("worker_bytes", "Bytes sent to workers, by what they were.",
                                    ["what"], **options)
        sets = Gauge("key_sets", "Key sets held, by tier.", ["tier"], **options)
        size = Gauge("key_bytes", "Bytes of key sets held, by tier.", ["tier"], **options)
        for tier in ("memory", "disk"):
            sets.labels(tier=tier).set_function(lambda tier=tier: key_stats().get(tier, (0, 0))[0])
            size.labels(tier=tier).set_function(lambda tier=tier: key_stats().get(tier, (0, 0))[1])
        Gauge("pending_requests", "Requests running or waiting for a worker.",
              **options).set_function(pending)

    @staticmethod
    def endpoint(path: str) -> str:
        """The endpoint label of a request path."""
        return path if path in ENDPOINTS else "other"

    def observe(self, path: str, status: int, seconds: float, bytes_in: int,
                bytes_out: Optional[int]) -> None:
        """Count one answered request."""
        endpoint = self.endpoint(path)
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        self.seconds.labels(endpoint=endpoint).observe(seconds)
        self.bytes_in.labels(endpoint=endpoint).inc(bytes_in)
        if bytes_out:
            self.bytes_out.labels(endpoint=endpoint).inc(bytes_out)

    def fan_out(self, report) -> None:
        """Count what a run on workers sent them (a ``FanOutReport``)."""
        self.worker_bytes.labels(what="ciphertexts").inc(report.task_bytes)
        self.worker_bytes.labels(what="parts").inc(report.fetched_bytes)
        for kind in report.part_loads:
            self.worker_loads.labels(kind=kind).inc()

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return generate_latest(self.registry)
