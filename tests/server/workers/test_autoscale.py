"""The scaling decision: a pure function of the pool's observation and the policy."""

from __future__ import annotations

import dataclasses

import pytest
from modelport.server.workers.autoscale import Decision, DelayWindow, Observation, ScalingPolicy, decide

POLICY = ScalingPolicy(
    target_delay_s=0.010, window_s=2.0, up_cooldown_s=1.0, idle_cooldown_s=5.0, down_ratio=0.25, min_samples=4
)


def observe(
    *,
    now: float = 100.0,
    workers: int = 2,
    delays: list[float] | None = None,
    spacing: float = 0.1,
    last_change_at: float = 0.0,
    last_busy_at: float = 0.0,
    min_workers: int = 1,
    max_workers: int = 4,
) -> Observation:
    delays = delays or []
    samples = [(now - spacing * (len(delays) - i), d) for i, d in enumerate(delays)]
    return Observation(
        now=now,
        workers=workers,
        min_workers=min_workers,
        max_workers=max_workers,
        samples=samples,
        last_change_at=last_change_at,
        last_busy_at=last_busy_at,
    )


def test_high_delay_scales_up() -> None:
    assert decide(observe(delays=[0.05] * 6, last_busy_at=99.9), POLICY) is Decision.UP


def test_high_delay_at_max_holds() -> None:
    assert decide(observe(workers=4, delays=[0.05] * 6, last_busy_at=99.9), POLICY) is Decision.HOLD


def test_too_few_samples_hold() -> None:
    assert decide(observe(delays=[0.05] * 3, last_busy_at=99.9), POLICY) is Decision.HOLD


def test_up_cooldown_after_a_change() -> None:
    # Changed 0.5 s ago: the new worker has not had time to show in the delay.
    obs = observe(delays=[0.05] * 6, spacing=0.05, last_change_at=99.5, last_busy_at=99.9)
    assert decide(obs, POLICY) is Decision.HOLD
    assert decide(dataclasses.replace(obs, now=100.6, last_change_at=99.5), POLICY) is Decision.UP


def test_samples_before_the_last_change_do_not_count() -> None:
    # Six slow samples, but all from before the last change 0.2 s ago (and cooldown passed would not matter).
    obs = observe(delays=[0.05] * 6, spacing=0.1, last_change_at=99.95, last_busy_at=99.9)
    policy = dataclasses.replace(POLICY, up_cooldown_s=0.0)
    assert decide(obs, policy) is Decision.HOLD


def test_samples_older_than_the_window_do_not_count() -> None:
    obs = observe(delays=[0.05] * 6, spacing=1.0, last_busy_at=99.9)  # 5 of 6 older than 2 s
    assert decide(obs, POLICY) is Decision.HOLD


def test_idle_pool_scales_down_after_cooldown() -> None:
    assert decide(observe(last_busy_at=94.0), POLICY) is Decision.DOWN
    assert decide(observe(last_busy_at=96.0), POLICY) is Decision.HOLD


def test_no_scale_down_soon_after_a_change() -> None:
    assert decide(observe(last_busy_at=0.0, last_change_at=97.0), POLICY) is Decision.HOLD


def test_hysteresis_band_holds() -> None:
    # Delay between target * down_ratio (2.5 ms) and the target (10 ms): neither up nor down.
    obs = observe(delays=[0.005] * 6, last_busy_at=50.0)
    assert decide(obs, POLICY) is Decision.HOLD
    quiet = observe(delays=[0.001] * 6, last_busy_at=50.0)
    assert decide(quiet, POLICY) is Decision.DOWN


def test_never_below_min_or_above_max() -> None:
    assert decide(observe(workers=1, last_busy_at=0.0), POLICY) is Decision.HOLD
    assert decide(observe(workers=0, min_workers=1), POLICY) is Decision.UP
    assert decide(observe(workers=5, max_workers=4, delays=[1.0] * 8), POLICY) is Decision.DOWN


def test_does_not_thrash_under_oscillating_load() -> None:
    """Simulate a pool: load alternates every 0.5 s; count the changes over a minute."""
    workers, last_change, last_busy = 1, 0.0, 0.0
    window = DelayWindow(window_s=POLICY.window_s)
    changes = 0
    t = 0.0
    while t < 60.0:
        busy = int(t / 0.5) % 2 == 0
        # Delay shrinks as workers grow: 40 ms at 1 worker, 20 at 2, 13 at 3 ...
        delay = 0.04 / workers if busy else 0.0
        window.add(t, delay)
        if busy:
            last_busy = t
        step = decide(
            Observation(
                now=t,
                workers=workers,
                min_workers=1,
                max_workers=4,
                samples=window.samples(t),
                last_change_at=last_change,
                last_busy_at=last_busy,
            ),
            POLICY,
        )
        if step is not Decision.HOLD:
            workers += 1 if step is Decision.UP else -1
            last_change = t
            changes += 1
        t += 0.05
    assert 1 <= workers <= 4
    assert changes <= 4  # it climbs to what the load needs and stays; no up/down cycles


def test_delay_window_drops_old_samples() -> None:
    window = DelayWindow(window_s=1.0, max_samples=3)
    for t in range(5):
        window.add(float(t), 0.1 * t)
    samples = window.samples(4.0)
    assert [t for t, _ in samples] == [3.0, 4.0]
    assert [d for _, d in samples] == pytest.approx([0.3, 0.4])


def test_policy_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="down_ratio"):
        ScalingPolicy(down_ratio=1.5)
    with pytest.raises(ValueError, match="positive"):
        ScalingPolicy(target_delay_s=0)
