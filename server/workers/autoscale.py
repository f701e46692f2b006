"""When to add or remove a worker: a pure decision on queue-delay samples, plus the window that feeds it.

The decision (:func:`decide`) has no clock and no state of its own: the caller passes the time, the samples
and when the pool last changed size or was last busy, so every rule is unit-testable. The rules:

- below ``min_workers`` -> UP, above ``max_workers`` -> DOWN, whatever else holds;
- UP when the mean queue delay of the samples taken *since the last change* (and inside the sliding window)
  exceeds the target, there are at least ``min_samples`` of them, and ``up_cooldown_s`` has passed since the
  last change (a new worker needs a moment to show in the delay);
- DOWN when the pool has not been busy for ``idle_cooldown_s``, no change happened in that time either, and
  the recent delay is below ``target * down_ratio`` (hysteresis: the band between the two thresholds holds);
- HOLD otherwise.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Decision", "DelayWindow", "Observation", "ScalingPolicy", "decide"]


class Decision(enum.Enum):
    """What the pool should do next."""

    UP = "up"
    DOWN = "down"
    HOLD = "hold"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScalingPolicy:
    """Thresholds and cooldowns, all in seconds."""

    target_delay_s: float = 0.005
    window_s: float = 2.0
    up_cooldown_s: float = 1.0
    idle_cooldown_s: float = 10.0
    down_ratio: float = 0.25
    min_samples: int = 8

    def __post_init__(self) -> None:
        if self.target_delay_s <= 0 or self.window_s <= 0:
            raise ValueError("target_delay_s and window_s must be positive")
        if not 0 <= self.down_ratio < 1:
            raise ValueError("down_ratio must be in [0, 1): scaling down needs a lower threshold than up")
        if self.up_cooldown_s < 0 or self.idle_cooldown_s < 0 or self.min_samples < 1:
            raise ValueError("cooldowns must be >= 0 and min_samples >= 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """What the pool looks like at ``now`` (a ``time.monotonic()`` instant).

    ``samples`` are ``(taken_at, queue_delay_s)`` pairs, oldest first; ``last_change_at`` is when the worker
    count last changed and ``last_busy_at`` when a request last had to wait for a worker (all workers busy).
    """

    now: float
    workers: int
    min_workers: int
    max_workers: int
    samples: Sequence[tuple[float, float]]
    last_change_at: float
    last_busy_at: float


def decide(obs: Observation, policy: ScalingPolicy) -> Decision:
    """The next step for a pool; see the module docstring for the rules."""
    if obs.workers < obs.min_workers:
        return Decision.UP
    if obs.workers > obs.max_workers:
        return Decision.DOWN
    since = max(obs.now - policy.window_s, obs.last_change_at)
    recent = [delay for taken_at, delay in obs.samples if taken_at >= since]
    mean = sum(recent) / len(recent) if recent else 0.0
    if (
        obs.workers < obs.max_workers
        and len(recent) >= policy.min_samples
        and mean > policy.target_delay_s
        and obs.now - obs.last_change_at >= policy.up_cooldown_s
    ):
        return Decision.UP
    quiet_since = max(obs.last_busy_at, obs.last_change_at)
    if (
        obs.workers > obs.min_workers
        and obs.now - quiet_since >= policy.idle_cooldown_s
        and mean <= policy.target_delay_s * policy.down_ratio
    ):
        return Decision.DOWN
    return Decision.HOLD


class DelayWindow:
    """The recent queue-delay samples of one pool, bounded in age and count (oldest dropped first)."""

    def __init__(self, *, window_s: float, max_samples: int = 4096) -> None:
        self._window_s = window_s
        self._samples: collections.deque[tuple[float, float]] = collections.deque(maxlen=max_samples)

    def add(self, taken_at: float, delay_s: float) -> None:
        """Record one request's queue delay, taken at ``taken_at`` (monotonic seconds)."""
        self._samples.append((taken_at, delay_s))

    def samples(self, now: float) -> list[tuple[float, float]]:
        """The samples no older than the window at ``now``, oldest first."""
        while self._samples and self._samples[0][0] < now - self._window_s:
            self._samples.popleft()
        return list(self._samples)
