"""Katib's random and grid suggestion services, pure: the parameter assignments of the first n trials."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Param", "SearchError", "grid_points", "params_of", "seed_of", "suggest"]

ALGORITHMS = ("random", "grid")


class SearchError(ValueError):
    """The suggestion service refuses the experiment: the Suggestion fails with this message."""


@dataclass(frozen=True)
class Param:
    """One search-space parameter as the suggestion services convert it."""

    name: str
    type: str  # int, double, categorical, discrete
    min: str = ""
    max: str = ""
    step: str = ""
    values: tuple[str, ...] = ()
    distribution: str = "uniform"


def params_of(spec: Mapping[str, Any]) -> tuple[Param, ...]:
    """The Experiment's ``spec.parameters``; an int's step defaults to 1 as search_space.py does."""
    out = []
    for p in spec.get("parameters") or []:
        space = p.get("feasibleSpace") or {}
        type_ = str(p.get("parameterType") or "")
        step = str(space.get("step") or "")
        if type_ == "int" and not step:
            step = "1"
        out.append(
            Param(
                name=str(p.get("name")),
                type=type_,
                min=str(space.get("min") or ""),
                max=str(space.get("max") or ""),
                step=step,
                values=tuple(str(v) for v in space.get("list") or ()),
                distribution=str(space.get("distribution") or "uniform"),
            )
        )
    return tuple(out)


def seed_of(algorithm: Mapping[str, Any], fallback: int) -> int:
    """The ``random_state`` setting (Katib's seed for random and grid), else ``fallback``."""
    for setting in algorithm.get("algorithmSettings") or []:
        if setting.get("name") in {"random_state", "seed"}:
            try:
                return int(setting.get("value"))
            except (TypeError, ValueError) as exc:
                raise SearchError(
                    f"failed to validate {setting.get('name')}({setting.get('value')}): {exc}"
                ) from exc
    return fallback


def _double_values(p: Param) -> list[str]:
    """np.arange(min, max + step, step) without the point past max, as convert_to_combinations does."""
    if not p.step:
        raise SearchError(
            f"Param {p.name} step is nil; For discrete search space, all parameters must include step"
        )
    low, high, step = float(p.min), float(p.max), float(p.step)
    if step <= 0:
        raise SearchError(f"Param {p.name} step must be positive")
    count = max(0, math.ceil((high + step - low) / step))
    values = [low + i * step for i in range(count)]
    if values and values[-1] > high:
        values.pop()
    return [repr(v) for v in values]


def grid_points(params: Sequence[Param]) -> list[dict[str, str]]:
    """Every combination, parameters ordered by name as Optuna's GridSampler orders them."""
    axes: list[tuple[str, list[str]]] = []
    for p in sorted(params, key=lambda q: q.name):
        if p.type == "int":
            values = [str(v) for v in range(int(p.min), int(p.max) + 1, int(p.step))]
        elif p.type == "double":
            values = _double_values(p)
        else:
            values = list(p.values)
        axes.append((p.name, values))
    return [
        dict(zip([n for n, _ in axes], combo, strict=True))
        for combo in itertools.product(*(v for _, v in axes))
    ]


def _random_value(p: Param, rng: random.Random) -> str:
    """One draw as hyperopt's hp.uniform, quniform, loguniform, normal and choice make it."""
    if p.type in {"categorical", "discrete"}:
        return rng.choice(p.values)
    low, high = float(p.min), float(p.max)
    dist = p.distribution
    if dist == "logUniform":
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    elif dist == "normal":
        value = rng.gauss((low + high) / 2, (high - low) / 6)
    elif dist == "logNormal":
        lo, hi = math.log(low), math.log(high)
        value = math.exp(rng.gauss((lo + hi) / 2, (hi - lo) / 6))
    else:
        value = rng.uniform(low, high)
    if p.step:
        step = float(p.step)
        value = round(value / step) * step
    if p.type == "int":
        return str(int(value))
    return repr(value)


def suggest(
    algorithm: str, params: Sequence[Param], seed: int, count: int, max_trials: int | None
) -> list[dict[str, str]]:
    """The first ``count`` assignments; the same seed gives the same sequence, so earlier ones stay put."""
    if algorithm not in ALGORITHMS:
        raise SearchError(f"simcluster runs the random and grid algorithms, not {algorithm}")
    rng = random.Random(seed)
    if algorithm == "random":
        return [{p.name: _random_value(p, rng) for p in params} for _ in range(count)]
    try:
        points = grid_points(params)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, SearchError):
            raise
        raise SearchError(f"failed to validate parameters: {exc}") from exc
    if max_trials is not None and max_trials > len(points):
        raise SearchError(f"Max Trial Count: {max_trials} > all possible search combinations: {len(points)}")
    if not points:
        return []
    # Optuna's GridSampler takes an unvisited point at random, then repeats points once all are taken.
    order = list(range(len(points)))
    rng.shuffle(order)
    return [dict(points[order[i % len(order)]]) for i in range(count)]
