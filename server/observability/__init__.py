"""What operators look at: Prometheus metrics, statistics, the access log and logging.

``metrics`` (the registry and per-request series), ``live_metrics`` (queue depths and workers read at scrape
time), ``metrics_listener`` (the metrics port), ``statistics`` (Triton's statistics extension),
``recording`` (one request's metrics, statistics and access-log line), ``access_log``, ``logging_setup``.
"""

from typing import TYPE_CHECKING

from ..lazy_exports import lazy_exports

if TYPE_CHECKING:
    from .access_log import new_request_id
    from .live_metrics import VersionState, WorkerState
    from .logging_setup import configure_logging
    from .metrics import ServerMetrics, VersionMetrics
    from .metrics_listener import MetricsApp
    from .recording import RequestRecorder, client_request_id, internal_error, tag_with_request_id
    from .statistics import VersionStatistics

# What the layers above import from this package; each is imported from its module on first use.
__all__ = [
    "MetricsApp",
    "RequestRecorder",
    "ServerMetrics",
    "VersionMetrics",
    "VersionState",
    "VersionStatistics",
    "WorkerState",
    "client_request_id",
    "configure_logging",
    "internal_error",
    "new_request_id",
    "tag_with_request_id",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "MetricsApp": "metrics_listener",
        "RequestRecorder": "recording",
        "ServerMetrics": "metrics",
        "VersionMetrics": "metrics",
        "VersionState": "live_metrics",
        "VersionStatistics": "statistics",
        "WorkerState": "live_metrics",
        "client_request_id": "recording",
        "configure_logging": "logging_setup",
        "internal_error": "recording",
        "new_request_id": "access_log",
        "tag_with_request_id": "recording",
    },
)
