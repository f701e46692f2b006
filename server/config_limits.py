"""The allowed range of every number a model's configuration holds, and the host-derived cap on workers.

Every source of a model configuration (``config.yaml``, a load request's ``config`` JSON, Triton's ModelConfig
JSON, the management API's ``min_worker``/``max_worker``) ends in :mod:`.model_config`, which checks these
ranges once. The upper bounds exist because a number that is only "too big" still does harm: a queue delay of
10^12 us parks every request for days, 10^30 cannot be written back as JSON (``/config``), 16 workers on 2
cores fork 16 ONNX Runtime processes that then fight for the cores.

=========================================  ==================================================================
key                                        allowed range
=========================================  ==================================================================
``max_batch_size``                         0 .. 65,536 rows
``inputs/outputs[].dims[]``                -1 (dynamic) or 1 .. 2^63-1 (int64), at most 64 dimensions
``version_policy.latest``                  1 .. 2^63-1
``version_policy.specific[]``              1 .. 2^63-1
``session.intra_op_threads``               0 (ONNX Runtime's default) .. 4 x usable cores
``session.inter_op_threads``               0 .. 4 x usable cores
``dynamic_batching.max_queue_delay_us``    0 .. 10,000,000 (10 s)
``dynamic_batching.preferred_batch_sizes`` each 1 .. ``max_batch_size`` (checked when resolved)
``dynamic_batching.max_queue_size``        1 .. 1,048,576 requests
``dynamic_batching.default_timeout_us``    0 (none) .. 86,400,000,000 (24 h)
``workers.min`` / ``workers.max``          1 .. :func:`max_workers` (host-derived, see there)
``workers.threads``                        0 (a share of the cores) .. 4 x usable cores
``workers.target_queue_delay_us``          1 .. 60,000,000 (60 s)
``workers.scale_down_idle_s``              0 .. 86,400 (24 h), finite
=========================================  ==================================================================
"""

from __future__ import annotations

import functools
import os

from .cgroup_limits import memory_limit_bytes, usable_cpus

__all__ = [
    "INT64_MAX",
    "MAX_BATCH_SIZE",
    "MAX_DEFAULT_TIMEOUT_US",
    "MAX_IDLE_S",
    "MAX_QUEUE_DELAY_US",
    "MAX_QUEUE_SIZE",
    "MAX_RANK",
    "MAX_TARGET_QUEUE_DELAY_US",
    "MAX_WARMUP_BYTES",
    "MAX_WARMUP_COUNT",
    "WORKER_MEMORY_FLOOR_BYTES",
    "max_threads",
    "max_workers",
]

INT64_MAX = 2**63 - 1  # tensor sizes and version numbers are int64 on the wire (Triton, KServe v2)
MAX_BATCH_SIZE = 65_536
MAX_QUEUE_SIZE = 1_048_576
MAX_QUEUE_DELAY_US = 10_000_000  # 10 s: a batching delay is a latency budget; beyond seconds it is a hang
MAX_DEFAULT_TIMEOUT_US = 86_400 * 1_000_000
MAX_TARGET_QUEUE_DELAY_US = 60 * 1_000_000
MAX_IDLE_S = 86_400
MAX_RANK = 64  # as the wire decoders: no model this server runs has more dimensions
MAX_WARMUP_COUNT = 1000  # runs of one warm-up sample: a few reach the steady state; more only delay READY
MAX_WARMUP_BYTES = 256 * 2**20  # one warm-up input (made or read from its file), held for every new instance
# What one worker process costs before its model: the interpreter with numpy and ONNX Runtime imported is
# ~45 MiB resident (measured: ru_maxrss after `import onnxruntime, numpy`), plus the session's arena and a
# small model; 128 MiB is a floor, real models need more.
WORKER_MEMORY_FLOOR_BYTES = 128 * 2**20


def max_threads() -> int:
    """The most intra-/inter-op threads one session may ask for: 4 x the usable cores.

    More threads than cores never run at once; 4x leaves room for a config written for a larger host while
    refusing the absurd (10^6 threads would take the worker down as it starts).
    """
    return 4 * usable_cpus()


@functools.cache
def max_workers() -> int:
    """The most worker processes one model version may have: ``min(4 x cores, memory / 128 MiB)``, >= 1.

    Why: a worker is a process running ONNX Runtime on the CPU; beyond the core count extra workers only
    help while others wait on something that is not the CPU (a GPU, a slow output copy), and beyond a few
    per core they only contend for it, so 4 per core is the most that can be useful. Each also costs at least
    :data:`WORKER_MEMORY_FLOOR_BYTES`, so the host's memory (a cgroup's limit when lower) bounds the count
    too: more workers than fit would be killed by the OOM killer instead of refused here. Computed once, on
    first use (not at import).
    """
    return max(1, min(4 * usable_cpus(), _memory_bytes() // WORKER_MEMORY_FLOOR_BYTES))


def _memory_bytes() -> int:
    """Physical memory, or the cgroup's memory limit when it is lower."""
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limit = memory_limit_bytes()
    return min(memory, limit) if limit is not None else memory
