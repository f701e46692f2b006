"""What operators look at: Prometheus metrics, statistics, the access log and logging.

``metrics`` (the registry and per-request series), ``live_metrics`` (queue depths and workers read at scrape
time), ``metrics_listener`` (the metrics port), ``statistics`` (Triton's statistics extension),
``recording`` (one request's metrics, statistics and access-log line), ``access_log``, ``logging_setup``.
"""

__all__: list[str] = []
