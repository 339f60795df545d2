"""lag-threshold-py: a KEDA-Kafka-scaler-like scaling policy for the Daedalus autoscaler.

One worker per ``lag_per_worker`` records of consumer lag, capped at the source's partition
count, clamped to the host's bounds, with an HPA/KEDA-style scale-down stabilization window.

This module is the pure logic, free of the component bindings: ``evaluate`` reads any object
with the attribute names of the WIT ``decision-input`` in snake_case (the dataclasses that
componentize-py generates, or ``types.SimpleNamespace`` in the unit tests) and returns an
``Outcome``; ``app.py`` converts it to the WIT types. Deterministic: no clocks, no randomness,
no I/O. Time is ``input.now_ms``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

NAME = "lag-threshold-py"
VERSION = "0.1.0"
DESCRIPTION = (
    "KEDA-Kafka-style lag rule: ceil(lag / lag_per_worker) workers, capped at the partition "
    "count, with scale-down stabilization."
)


@dataclass(frozen=True)
class Param:
    name: str
    default_value: str
    description: str
    minimum: float


PARAMS: Tuple[Param, ...] = (
    Param(
        "lag_per_worker",
        "100000",
        "records of consumer lag one worker should own (records per worker, >= 1)",
        1.0,
    ),
    Param(
        "activation_lag",
        "0",
        "below this consumer lag the job scales to its minimum parallelism (records, >= 0)",
        0.0,
    ),
    Param(
        "scale_down_stabilization_secs",
        "300",
        "a scale-down needs every observation of this window to allow it; the max desired "
        "over the window is used (seconds, >= 0)",
        0.0,
    ),
)

# A plain decimal or scientific number: no `inf`, `nan`, `1_000` or empty string.
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class PolicyFailure(Exception):
    """An expected failure; ``kind`` names the WIT ``policy-error`` case."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Params:
    lag_per_worker: float
    activation_lag: float
    stabilization_ms: float


@dataclass
class Outcome:
    """What to do: ``target`` is ``None`` to hold, else the job parallelism."""

    target: Optional[int]
    reason: str
    metrics: List[Tuple[str, float, str]] = field(default_factory=list)


def parse_params(params: Any) -> Params:
    """Parses ``input.params`` (key/value pairs); raises ``invalid-params`` naming the key."""
    values = {p.name: float(p.default_value) for p in PARAMS}
    specs = {p.name: p for p in PARAMS}
    for key, raw in params or ():
        spec = specs.get(key)
        if spec is None:
            known = ", ".join(p.name for p in PARAMS)
            raise PolicyFailure("invalid-params", f"unknown parameter `{key}`; known: {known}")
        text = str(raw).strip()
        value = float(text) if _NUMBER.match(text) else math.nan
        if not math.isfinite(value) or value < spec.minimum:
            raise PolicyFailure(
                "invalid-params", f"{key} = `{raw}`: expected a number >= {_fmt(spec.minimum)}"
            )
        values[key] = value
    return Params(
        lag_per_worker=values["lag_per_worker"],
        activation_lag=values["activation_lag"],
        stabilization_ms=values["scale_down_stabilization_secs"] * 1000.0,
    )


def _lag_of(observation: Any) -> Optional[float]:
    lag = getattr(observation, "lag_records", None)
    if isinstance(lag, (int, float)) and math.isfinite(lag) and lag >= 0:
        return float(lag)
    return None


def partition_count(observation: Any) -> Optional[int]:
    """Max ``max_parallelism`` of the source operators (empty ``upstream``), if any is known."""
    partitions = 0
    for op in getattr(observation, "operators", None) or ():
        if not op.upstream and op.max_parallelism > 0:
            partitions = max(partitions, op.max_parallelism)
    return partitions if partitions > 0 else None


@dataclass(frozen=True)
class _Target:
    activated: bool
    desired: int
    partitions: Optional[int]
    capped: int
    target: int
    low: int
    high: int


def _target_for(observation: Any, lag: float, params: Params, bounds: Any) -> _Target:
    low = bounds.min_parallelism
    high = max(bounds.max_parallelism, low)
    activated = lag >= params.activation_lag
    desired = max(1, math.ceil(lag / params.lag_per_worker)) if activated else low
    partitions = partition_count(observation)
    capped = min(desired, partitions) if partitions is not None else desired
    target = min(max(capped, low), high)
    return _Target(activated, desired, partitions, capped, target, low, high)


def evaluate(inp: Any) -> Outcome:
    """The decision for one ``decision-input``; raises ``PolicyFailure`` on expected errors."""
    params = parse_params(inp.params)
    if inp.rescale.in_progress:
        return Outcome(None, "A rescale is in progress, so the policy holds the current parallelism.")
    lag = _lag_of(inp.current)
    if lag is None:
        raise PolicyFailure(
            "insufficient-history", "the current observation has no consumer lag (lag-records)"
        )
    current = inp.current.parallelism
    t = _target_for(inp.current, lag, params, inp.bounds)
    target = t.target

    # Scale-down stabilization (HPA/KEDA): the max target over the window, never above current.
    window_max: Optional[int] = None
    if target < current and params.stabilization_ms > 0:
        since = inp.now_ms - params.stabilization_ms
        window_max = target
        for obs in inp.history or ():
            obs_lag = _lag_of(obs)
            if obs.at_ms > since and obs_lag is not None:
                window_max = max(window_max, _target_for(obs, obs_lag, params, inp.bounds).target)
        target = min(current, window_max)

    metrics: List[Tuple[str, float, str]] = [
        ("lag", lag, "records"),
        ("lag-per-worker", params.lag_per_worker, "records"),
        ("desired", float(t.desired), "workers"),
    ]
    if t.partitions is not None:
        metrics.append(("partitions", float(t.partitions), "partitions"))
    if window_max is not None:
        metrics.append(("window-max-target", float(window_max), "workers"))
    metrics.append(("target", float(target), "workers"))

    if t.activated:
        why = f"lag {_fmt(lag)} records at {_fmt(params.lag_per_worker)} per worker wants {t.desired} worker{'' if t.desired == 1 else 's'}"
    else:
        why = (
            f"lag {_fmt(lag)} records is below the activation lag of {_fmt(params.activation_lag)}, "
            f"so the minimum of {t.low} applies"
        )
    steps = []
    if t.capped < t.desired:
        steps.append(f"capped at {t.partitions} partitions")
    if t.target != t.capped:
        steps.append(f"clamped to the bounds {t.low}..{t.high}")
    if target != t.target:
        steps.append(
            f"held at {target} by the {_fmt(params.stabilization_ms / 1000)} s scale-down "
            "stabilization window"
        )
    outcome = f"holding at {current}" if target == current else f"scaling from {current} to {target}"
    reason = why[0].upper() + why[1:] + ("".join(", " + s for s in steps)) + f": {outcome}."
    return Outcome(None if target == current else target, reason, metrics)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.2f}"
