"""What the management API answers as TorchServe's does: the model list's pages, the describe answer's field
names, ``PUT /models/M/V/set-default`` and ``/api-description``.

- ``GET /models?limit=&next_page_token=``: ``limit`` names (default 100) from the position
  ``next_page_token`` (a number: where the previous page ended), with ``nextPageToken`` while more follow.
- The describe entries carry TorchServe's fields (``engine``, ``runtime``, workers' ``gpu`` and
  ``memoryUsage``: the resident bytes of a process worker, 0 for a thread instance, which shares the server's
  memory) beside ours (kind, pid, uptime, batches, config).
"""

from __future__ import annotations

from typing import Any

import psutil

from ..errors import InvalidInput
from ..repository.model_manager import LoadedVersion

__all__ = ["DEFAULT_PAGE", "model_page", "torchserve_fields"]

DEFAULT_PAGE = 100  # TorchServe's default limit
_GPU_PROVIDERS = ("cuda", "tensorrt")


def model_page(names: list[str], limit: int | None, token: str | None) -> dict[str, Any]:
    """One page of ``names`` (sorted) as ``GET /models`` answers it."""
    start = 0
    if token:
        if not token.isdigit():
            raise InvalidInput(
                f"query parameter 'next_page_token': {token[:40]!a} is not a token this server gave "
                "(a whole number, the nextPageToken of the previous page)"
            )
        start = int(token)
    size = DEFAULT_PAGE if limit is None or limit == 0 else limit
    page = names[start : start + size]
    answer: dict[str, Any] = {"models": [{"modelName": n, "modelUrl": n} for n in page]}
    if start + size < len(names):
        answer = {"nextPageToken": str(start + size), **answer}
    return answer


def _memory(pid: int) -> int:
    if pid <= 0:
        return 0
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0


def torchserve_fields(entry: dict[str, Any], loaded: LoadedVersion) -> dict[str, Any]:
    """``entry`` (a describe entry) with TorchServe's field names added."""
    gpu = loaded.spec.signature.provider in _GPU_PROVIDERS
    entry["engine"] = "OnnxRuntime"
    for worker in entry.get("workers", []):
        worker.update(gpu=gpu, memoryUsage=_memory(worker.get("pid", 0)))
    return entry
