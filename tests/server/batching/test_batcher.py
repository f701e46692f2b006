"""The dynamic batcher in front of a real pool of each kind (worker processes, thread instances)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from modelport.server.batching.batcher import Batcher, BatcherSettings
from modelport.server.errors import DeadlineExceeded, QueueFull
from modelport.server.settings import InstanceKind
from modelport.server.workers.autoscale import DelayWindow
from modelport.server.workers.instances import INSTANCE_KINDS, InstancePool, make_pool
from modelport.server.workers.pool import PoolSettings

from tests.helpers.onnx_models import identity_model, matmul_chain_model, mlp_model

T = TypeVar("T")


def run_async(make: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(make(), timeout)

    return asyncio.run(bounded())


@pytest.fixture(params=INSTANCE_KINDS)
def kind(request: pytest.FixtureRequest) -> InstanceKind:
    """Each test runs against both kinds of instances."""
    value: InstanceKind = request.param
    return value


async def open_batcher(path: Path, kind: InstanceKind, **batching: Any) -> tuple[Batcher, InstancePool]:
    pool = make_pool(kind, PoolSettings(model="m", version="1", path=str(path), threads=1))
    await pool.start()
    values: dict[str, Any] = {"model": "m", "max_batch_size": 32, "max_queue_delay_s": 0.002}
    values.update(batching)
    batcher = Batcher(BatcherSettings(**values), pool, DelayWindow(window_s=2.0))
    batcher.start()
    return batcher, pool


async def close(batcher: Batcher, pool: InstancePool) -> None:
    await batcher.close(drain_timeout=2)
    await pool.close(drain_timeout=2)


def test_concurrent_requests_with_random_batch_sizes_match_onnx_runtime(
    tmp_path: Path, kind: InstanceKind
) -> None:
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(), str(path))
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    inputs = [rng.standard_normal((int(rng.integers(1, 9)), 16)).astype(np.float32) for _ in range(300)]

    async def scenario() -> list[Any]:
        batcher, pool = await open_batcher(path, kind)
        try:
            return await asyncio.gather(
                *(batcher.submit({"features": x}, ["probabilities"], None) for x in inputs)
            )
        finally:
            await close(batcher, pool)

    results = run_async(scenario)
    for x, result in zip(inputs, results, strict=True):
        expected = reference.run(None, {"features": x})[0]
        np.testing.assert_allclose(result.outputs["probabilities"], expected, rtol=1e-5, atol=1e-6)
        assert x.shape[0] <= result.batch_size <= 32
    assert max(r.batch_size for r in results) > 8  # requests were really gathered into larger batches


def test_requests_whose_other_dims_differ_go_in_separate_batches(tmp_path: Path, kind: InstanceKind) -> None:
    path = tmp_path / "identity.onnx"
    onnx.save(identity_model("FP32", dims=(-1, -1)), str(path))
    shapes = [(2, 3), (1, 5), (3, 3), (2, 5), (1, 3)]
    arrays = [np.full(s, i, dtype=np.float32) for i, s in enumerate(shapes)]

    async def scenario() -> list[Any]:
        batcher, pool = await open_batcher(path, kind, max_queue_delay_s=0.05)
        try:
            return await asyncio.gather(*(batcher.submit({"INPUT0": a}, ["OUTPUT0"], None) for a in arrays))
        finally:
            await close(batcher, pool)

    results = run_async(scenario)
    for array, result in zip(arrays, results, strict=True):
        np.testing.assert_array_equal(result.outputs["OUTPUT0"], array)
    # The width-3 requests ran together (6 rows), the width-5 ones together (3 rows).
    assert [r.batch_size for r in results] == [6, 3, 6, 3, 6]


def test_preferred_batch_size_dispatches_without_waiting_for_the_delay(
    tmp_path: Path, kind: InstanceKind
) -> None:
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(), str(path))

    async def scenario() -> tuple[float, list[Any]]:
        batcher, pool = await open_batcher(path, kind, max_queue_delay_s=2.0, preferred_batch_sizes=(4,))
        try:
            started = time.monotonic()
            x = np.ones((1, 16), np.float32)
            results = await asyncio.gather(
                *(batcher.submit({"features": x}, ["probabilities"], None) for _ in range(4))
            )
            return time.monotonic() - started, results
        finally:
            await close(batcher, pool)

    elapsed, results = run_async(scenario)
    assert elapsed < 1.0  # far below the 2 s delay
    assert [r.batch_size for r in results] == [4, 4, 4, 4]


def test_requests_arriving_within_the_queue_delay_share_a_batch_and_a_lone_one_waits_it_out(
    tmp_path: Path, kind: InstanceKind
) -> None:
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(), str(path))
    x = np.ones((1, 16), np.float32)

    async def scenario() -> tuple[list[Any], float, Any]:
        batcher, pool = await open_batcher(path, kind, max_queue_delay_s=0.3)
        try:

            async def later(delay: float) -> Any:
                await asyncio.sleep(delay)
                return await batcher.submit({"features": x}, ["probabilities"], None)

            spread = list(await asyncio.gather(later(0.0), later(0.05), later(0.1)))  # 50 ms apart
            started = time.monotonic()
            lone = await batcher.submit({"features": x}, ["probabilities"], None)
            return spread, time.monotonic() - started, lone
        finally:
            await close(batcher, pool)

    spread, waited, lone = run_async(scenario)
    assert [r.batch_size for r in spread] == [3, 3, 3]  # the first request's delay gathered the other two
    assert lone.batch_size == 1
    assert 0.25 <= waited < 5.0  # it waited for the 0.3 s delay (timers may be ms-grained), then ran


def test_full_queue_refuses_at_once_naming_its_size(tmp_path: Path, kind: InstanceKind) -> None:
    path = tmp_path / "slow.onnx"
    onnx.save(matmul_chain_model(), str(path))
    x = np.ones((64, 1024), np.float32)

    async def scenario() -> None:
        batcher, pool = await open_batcher(path, kind, max_queue_size=3, max_batch_size=64)
        try:
            running = [asyncio.ensure_future(batcher.submit({"x": x}, ["y"], None))]
            while batcher.in_flight == 0:  # that batch runs (~50 ms); three more wait: the queue's bound
                await asyncio.sleep(0.001)
            running += [asyncio.ensure_future(batcher.submit({"x": x}, ["y"], None)) for _ in range(3)]
            await asyncio.sleep(0)
            assert batcher.queue_depth == 3
            with pytest.raises(
                QueueFull, match=r"the queue is full \(3 requests waiting, max_queue_size 3\)"
            ):
                await batcher.submit({"x": x}, ["y"], None)
            # Refused at once: the first batch is still running and nothing left the queue meanwhile.
            assert batcher.in_flight == 1 and batcher.queue_depth == 3
            await asyncio.gather(*running)
        finally:
            await close(batcher, pool)

    run_async(scenario)


def test_a_request_past_its_deadline_is_dropped_before_it_runs(tmp_path: Path, kind: InstanceKind) -> None:
    path = tmp_path / "slow.onnx"
    onnx.save(matmul_chain_model(), str(path))
    x = np.ones((64, 1024), np.float32)

    async def scenario() -> None:
        batcher, pool = await open_batcher(path, kind, max_batch_size=64)
        try:
            busy = asyncio.ensure_future(batcher.submit({"x": x}, ["y"], None))
            while batcher.in_flight == 0:
                await asyncio.sleep(0.001)
            started = time.monotonic()
            with pytest.raises(DeadlineExceeded, match=r"timeout expired .* before it ran"):
                await batcher.submit({"x": x}, ["y"], time.monotonic() + 0.005)
            assert time.monotonic() - started < 0.5  # dropped at its deadline, not after the busy batch
            await busy
            before = sum(w.batches for w in pool.status())
            with pytest.raises(DeadlineExceeded):  # already expired: never reaches a worker
                await batcher.submit({"x": x[:1]}, ["y"], time.monotonic() - 1)
            await asyncio.sleep(0.05)
            assert sum(w.batches for w in pool.status()) == before
        finally:
            await close(batcher, pool)

    run_async(scenario)


def test_default_timeout_applies_without_a_request_timeout(tmp_path: Path, kind: InstanceKind) -> None:
    path = tmp_path / "slow.onnx"
    onnx.save(matmul_chain_model(), str(path))
    x = np.ones((64, 1024), np.float32)

    async def scenario() -> None:
        batcher, pool = await open_batcher(path, kind, max_batch_size=64, default_timeout_s=0.005)
        try:
            busy = asyncio.ensure_future(batcher.submit({"x": x}, ["y"], time.monotonic() + 30))
            await asyncio.sleep(0.01)
            with pytest.raises(DeadlineExceeded):
                await batcher.submit({"x": x}, ["y"], None)
            await busy
        finally:
            await close(batcher, pool)

    run_async(scenario)
