"""The autoscaler's pace: a quiet pool is looked at rarely, a busy one often (real executor and worker)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import onnx
import pytest
from modelport.server.batching import pooled_executor
from modelport.server.batching.batcher import BatcherSettings
from modelport.server.batching.pooled_executor import PooledExecutor
from modelport.server.workers.autoscale import Decision, Observation, ScalingPolicy, decide
from modelport.server.workers.pool import PoolSettings

from tests.helpers.onnx_models import mlp_model


def test_a_quiet_pool_is_looked_at_on_the_idle_interval_and_a_busy_one_on_the_short_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(), str(path))
    looks: list[Observation] = []

    def counting_decide(obs: Observation, policy: ScalingPolicy) -> Decision:
        looks.append(obs)
        return decide(obs, policy)

    monkeypatch.setattr(pooled_executor, "decide", counting_decide)

    async def scenario() -> tuple[int, int]:
        executor = PooledExecutor(
            pool=PoolSettings(model="mlp", version="1", path=str(path), threads=1),
            batching=BatcherSettings(model="mlp", max_batch_size=8),
            policy=ScalingPolicy(window_s=0.5),
            interval_s=0.02,
            idle_interval_s=0.4,
        )
        await executor.start()
        try:
            await asyncio.sleep(1.2)  # quiet: at most one look per 0.4 s
            quiet = len(looks)
            features = np.ones((1, 16), np.float32)
            stop = asyncio.get_running_loop().time() + 1.2
            while asyncio.get_running_loop().time() < stop:  # traffic: a look every 0.02 s
                await executor.infer({"features": features}, output_names=["probabilities"], deadline=None)
                await asyncio.sleep(0.005)
            return quiet, len(looks) - quiet
        finally:
            await executor.close(drain_timeout=1)

    quiet, busy = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert 1 <= quiet <= 4, f"{quiet} looks in 1.2 quiet seconds (idle interval 0.4 s)"
    assert busy >= 15, f"only {busy} looks in 1.2 busy seconds (interval 0.02 s)"
    assert all(obs.samples for obs in looks[quiet + 2 :]), "looks during traffic saw no queue delays"
