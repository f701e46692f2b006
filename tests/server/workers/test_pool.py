"""The instance pools on their own: real worker processes or threads, real ONNX Runtime sessions."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from modelport.server.errors import InvalidInput, ModelNotReady, ModelportError
from modelport.server.settings import InstanceKind
from modelport.server.workers.instances import INSTANCE_KINDS, make_pool
from modelport.server.workers.pool import PoolSettings, WorkerPool, thread_budget

from tests.helpers.onnx_models import identity_model, mlp_model

T = TypeVar("T")


def copy_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    return {name: np.array(value, copy=True) for name, value in outputs.items()}


def run_async(make: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(make(), timeout)

    return asyncio.run(bounded())


@pytest.fixture(scope="module")
def mlp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pool") / "mlp.onnx"
    onnx.save(mlp_model(), str(path))
    return path


def settings(path: Path, **overrides: Any) -> PoolSettings:
    values: dict[str, Any] = {"model": "mlp", "version": "1", "path": str(path), "threads": 1}
    values.update(overrides)
    return PoolSettings(**values)


@pytest.mark.parametrize("kind", INSTANCE_KINDS)
def test_batches_match_a_direct_onnx_runtime_run(mlp_path: Path, kind: InstanceKind) -> None:
    reference = ort.InferenceSession(str(mlp_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    parts = [rng.standard_normal((n, 16)).astype(np.float32) for n in (1, 3, 7, 64, 300)]

    async def scenario() -> None:
        pool = make_pool(kind, settings(mlp_path, min_workers=2, max_workers=2))
        await pool.start()
        try:
            # Concatenation happens straight into shared memory; the regions grow for the 300-row batch.
            result, timings, _ = await pool.run({"features": parts}, ["probabilities"], copy_outputs)
            expected = reference.run(None, {"features": np.concatenate(parts)})[0]
            np.testing.assert_allclose(result["probabilities"], expected, rtol=1e-5, atol=1e-6)
            assert timings.infer_ns > 0
            for part in parts:
                single, _, _ = await pool.run({"features": [part]}, ["probabilities"], copy_outputs)
                np.testing.assert_allclose(
                    single["probabilities"], reference.run(None, {"features": part})[0], rtol=1e-5, atol=1e-6
                )
            assert {w.state for w in pool.status()} == {"READY"}
            if kind == "process":
                assert len({w.pid for w in pool.status()} - {os.getpid()}) == 2
            else:  # threads of this process: no pid of their own
                assert [(w.kind, w.pid) for w in pool.status()] == [("thread", 0), ("thread", 0)]
        finally:
            await pool.close(drain_timeout=1)

    run_async(scenario)


@pytest.mark.parametrize("kind", INSTANCE_KINDS)
def test_bytes_tensors_round_trip(tmp_path: Path, kind: InstanceKind) -> None:
    path = tmp_path / "bytes.onnx"
    onnx.save(identity_model("BYTES", dims=(-1, 2)), str(path))
    data = np.array([[b"hello", b""], [b"two words", "caf\u00e9".encode()]], dtype=np.object_)

    async def scenario() -> dict[str, Any]:
        pool = make_pool(kind, settings(path, model="bytes"))
        await pool.start()
        try:
            result, _, _ = await pool.run({"INPUT0": [data[:1], data[1:]]}, ["OUTPUT0"], copy_outputs)
            return result
        finally:
            await pool.close(drain_timeout=1)

    out = run_async(scenario)["OUTPUT0"]
    assert out.shape == (2, 2)
    assert [x.encode() if isinstance(x, str) else x for x in out.ravel()] == list(data.ravel())


@pytest.mark.parametrize("kind", INSTANCE_KINDS)
def test_bytes_that_are_not_utf8_are_refused_naming_the_tensor(tmp_path: Path, kind: InstanceKind) -> None:
    path = tmp_path / "bytes.onnx"
    onnx.save(identity_model("BYTES", dims=(-1, 1)), str(path))

    async def scenario() -> None:
        pool = make_pool(kind, settings(path, model="bytes"))
        await pool.start()
        try:
            bad = np.array([[b"\xff\xfe"]], dtype=np.object_)
            with pytest.raises(InvalidInput, match=r"tensor 'INPUT0'.*UTF-8"):
                await pool.run({"INPUT0": [bad]}, ["OUTPUT0"], copy_outputs)
        finally:
            await pool.close(drain_timeout=1)

    run_async(scenario)


@pytest.mark.parametrize("kind", INSTANCE_KINDS)
def test_onnx_runtime_refusal_is_an_invalid_input_and_the_worker_survives(
    mlp_path: Path, kind: InstanceKind
) -> None:
    async def scenario() -> None:
        pool = make_pool(kind, settings(mlp_path))
        await pool.start()
        try:
            wrong = np.zeros((2, 5), dtype=np.float32)  # the graph wants 16 features
            with pytest.raises(InvalidInput, match="mlp"):
                await pool.run({"features": [wrong]}, ["probabilities"], copy_outputs)
            ok, _, _ = await pool.run(
                {"features": [np.zeros((1, 16), np.float32)]}, ["probabilities"], copy_outputs
            )
            assert ok["probabilities"].shape == (1, 10)
        finally:
            await pool.close(drain_timeout=1)

    run_async(scenario)


def test_sigkill_under_load_fails_no_batch(mlp_path: Path) -> None:
    x = np.ones((4, 16), np.float32)

    async def scenario() -> None:
        pool = WorkerPool(settings(mlp_path, min_workers=2, max_workers=2))
        await pool.start()
        try:
            victim = pool.status()[0].pid

            async def killer() -> None:
                await asyncio.sleep(0.05)
                os.kill(victim, signal.SIGKILL)

            results = await asyncio.gather(
                killer(),
                *(pool.run({"features": [x]}, ["probabilities"], copy_outputs) for _ in range(2000)),
                return_exceptions=True,
            )
            failures = [r for r in results if isinstance(r, BaseException)]
            assert failures == []
            for _ in range(200):  # the restart (back-off 50 ms) brings the pool back to two workers
                if len(pool.status()) == 2:
                    break
                await asyncio.sleep(0.02)
            pids = {w.pid for w in pool.status()}
            assert len(pids) == 2 and victim not in pids
        finally:
            await pool.close(drain_timeout=1)

    run_async(scenario)


def test_crash_loop_marks_the_pool_failed_with_the_cause(mlp_path: Path) -> None:
    async def scenario() -> None:
        pool = WorkerPool(settings(mlp_path, crash_limit=3, restart_backoff_s=0.01))
        await pool.start()
        try:
            killed: set[int] = set()
            for _ in range(500):  # kill every worker as it appears, as a fault in the model would
                if pool.failure is not None:
                    break
                for worker in pool.status():
                    if worker.state == "READY" and worker.pid not in killed:
                        killed.add(worker.pid)
                        os.kill(worker.pid, signal.SIGKILL)
                await asyncio.sleep(0.01)
            assert pool.failure is not None
            assert "killed by signal 9 (SIGKILL)" in pool.failure
            assert "last stderr: modelport worker" in pool.failure
            with pytest.raises(ModelNotReady, match="unavailable"):
                await pool.run({"features": [np.ones((1, 16), np.float32)]}, ["probabilities"], copy_outputs)
            await pool.scale(min_workers=1, max_workers=1)  # an operator's PUT starts afresh
            assert pool.failure is None
            ok, _, _ = await pool.run(
                {"features": [np.ones((1, 16), np.float32)]}, ["probabilities"], copy_outputs
            )
            assert ok["probabilities"].shape == (1, 10)
        finally:
            await pool.close(drain_timeout=1)

    run_async(scenario)


@pytest.mark.parametrize("kind", INSTANCE_KINDS)
def test_load_failure_names_the_model(tmp_path: Path, kind: InstanceKind) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")

    async def scenario() -> None:
        pool = make_pool(kind, settings(broken, model="broken"))
        await pool.start()

    with pytest.raises(ModelportError, match=r"model 'broken' version 1: (worker|instance) failed to load"):
        run_async(scenario)


@pytest.mark.parametrize("kind", INSTANCE_KINDS)
def test_scale_up_and_down(mlp_path: Path, kind: InstanceKind) -> None:
    async def scenario() -> None:
        pool = make_pool(kind, settings(mlp_path, min_workers=1, max_workers=3))
        await pool.start()
        try:
            assert pool.size == 1
            await pool.add_worker()
            await pool.add_worker()
            await pool.add_worker()  # bounded by max_workers
            assert pool.size == 3 and len(pool.status()) == 3
            pool.remove_worker()
            pool.remove_worker()
            for _ in range(100):
                if len(pool.status()) == 1:
                    break
                await asyncio.sleep(0.02)
            assert len(pool.status()) == 1
            ok, _, _ = await pool.run(
                {"features": [np.ones((2, 16), np.float32)]}, ["probabilities"], copy_outputs
            )
            assert ok["probabilities"].shape == (2, 10)
        finally:
            await pool.close(drain_timeout=1)

    run_async(scenario)


def test_a_worker_that_cannot_be_started_is_logged_not_raised(
    mlp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_descriptors() -> int:
        raise OSError(24, "Too many open files")

    async def scenario() -> None:
        pool = WorkerPool(settings(mlp_path, min_workers=1, max_workers=2))
        await pool.start()
        try:
            # The autoscaler calls add_worker: an OS refusal must not end it (nor its executor's close).
            monkeypatch.setattr("modelport.server.workers.worker_process.anonymous_log", no_descriptors)
            await pool.add_worker()
            assert pool.size == 1
            monkeypatch.undo()
            await pool.add_worker()
            assert pool.size == 2
        finally:
            await pool.close(drain_timeout=1)

    run_async(scenario)


def test_thread_budget_shares_the_cores() -> None:
    cores = len(os.sched_getaffinity(0))
    assert thread_budget(3, 4) == 3  # configured: taken as given
    assert thread_budget(0, 1) == cores
    assert thread_budget(0, cores * 2) == 1
    assert thread_budget(0, 2) * 2 <= max(cores, 2)


@pytest.mark.parametrize("kind", INSTANCE_KINDS)
def test_an_error_reading_outputs_leaves_the_worker_usable(mlp_path: Path, kind: InstanceKind) -> None:
    def broken(outputs: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("no such output")

    async def scenario() -> None:
        pool = make_pool(kind, settings(mlp_path))
        await pool.start()
        try:
            x = np.ones((1, 16), np.float32)
            with pytest.raises(KeyError):
                await pool.run({"features": [x]}, ["probabilities"], broken)
            ok, _, _ = await asyncio.wait_for(
                pool.run({"features": [x]}, ["probabilities"], copy_outputs), 10
            )
            assert ok["probabilities"].shape == (1, 10)
            assert [w.state for w in pool.status()] == ["READY"]
        finally:
            await pool.close(drain_timeout=1)

    run_async(scenario)


@pytest.mark.parametrize("kind", INSTANCE_KINDS)
def test_an_error_writing_inputs_after_the_region_grew_leaves_the_worker_usable(
    mlp_path: Path, kind: InstanceKind
) -> None:
    reference = ort.InferenceSession(str(mlp_path), providers=["CPUExecutionProvider"])

    async def scenario() -> None:
        pool = make_pool(kind, settings(mlp_path))
        await pool.start()
        try:
            small = np.ones((1, 16), np.float32)
            await pool.run({"features": [small]}, ["probabilities"], copy_outputs)
            pids = [w.pid for w in pool.status()]
            # Big enough to grow the input region; the mismatched second part fails the concatenation into it.
            big = np.ones((2000, 16), np.float32)
            with pytest.raises(ValueError):
                await pool.run(
                    {"features": [big, np.ones((1, 15), np.float32)]}, ["probabilities"], copy_outputs
                )
            x = np.random.default_rng(2).standard_normal((2000, 16)).astype(np.float32)
            ok, _, _ = await asyncio.wait_for(
                pool.run({"features": [x]}, ["probabilities"], copy_outputs), 10
            )
            expected = reference.run(None, {"features": x})[0]
            np.testing.assert_allclose(ok["probabilities"], expected, rtol=1e-5, atol=1e-6)
            assert [w.pid for w in pool.status()] == pids
        finally:
            await pool.close(drain_timeout=1)

    run_async(scenario)


def test_a_worker_that_does_not_answer_is_killed_and_the_batch_retried_once(tmp_path: Path) -> None:
    from tests.helpers.onnx_models import matmul_chain_model

    path = tmp_path / "slow.onnx"
    onnx.save(matmul_chain_model(), str(path))

    async def scenario() -> None:
        # ~50 ms per batch against a 10 ms response timeout: both attempts time out.
        pool = WorkerPool(settings(path, model="slow", response_timeout_s=0.01, restart_backoff_s=0.01))
        await pool.start()
        try:
            first = pool.status()[0].pid
            with pytest.raises(
                ModelportError, match=r"died twice \(worker pid \d+ gave no answer within 0\.01 s"
            ):
                await pool.run({"x": [np.ones((64, 1024), np.float32)]}, ["y"], copy_outputs)
            assert first not in {w.pid for w in pool.status()}
        finally:
            await pool.close(drain_timeout=1)

    run_async(scenario)


def test_worker_logs_have_no_name_so_nothing_is_left_behind(mlp_path: Path) -> None:
    """A worker's stdout/stderr is a file without a name: a killed server cannot leave it in the temp dir."""

    async def scenario() -> None:
        pool = WorkerPool(settings(mlp_path, min_workers=1, max_workers=1))
        await pool.start()
        try:
            (worker,) = pool.status()
            stderr = os.readlink(f"/proc/{worker.pid}/fd/2")
            assert stderr.endswith("(deleted)") or stderr.startswith("/memfd:"), stderr
        finally:
            await pool.close(drain_timeout=1)

    run_async(scenario)
