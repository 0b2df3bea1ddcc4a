"""Katib's StdOut metrics collector, pure: metric lines parsed from a log and folded into an observation."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .naming import UNAVAILABLE

__all__ = ["DEFAULT_FILTER", "MetricLog", "objective_value", "observation", "parse_text"]

# pkg/metricscollector/v1beta1/common/const.go: "loss=0.3", "accuracy=.98", "Score=-7.53e-05"
DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
# Go's time.Time{} in RFC 3339: what a line without a leading timestamp is stamped with
ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class MetricLog:
    """One reported value, as the collector sends it to katib-db-manager."""

    timestamp: str
    name: str
    value: str


def _timestamp(token: str) -> str | None:
    """``token`` when it is an RFC 3339 time, as Go's time.Parse(RFC3339Nano) accepts it."""
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", token):
        return None
    try:
        datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", token).replace("Z", "+00:00"))
    except ValueError:
        return None
    return token


def parse_text(lines: Iterable[str], metrics: Sequence[str], filters: Sequence[str] = ()) -> list[MetricLog]:
    """The collector's text parsing: ``metrics[0]`` is the objective; without it one "unavailable" log.

    Lines that name no metric are skipped before any regex runs; a leading RFC 3339 token stamps the line.
    """
    patterns = [re.compile(f) for f in (filters or (DEFAULT_FILTER,))]
    logs: list[MetricLog] = []
    for line in lines:
        if not any(m in line for m in metrics):
            continue
        first, _, rest = line.partition(" ")
        stamp = (_timestamp(first) if rest else None) or ZERO_TIME
        for pattern in patterns:
            for found in pattern.finditer(line):
                groups = found.groups()
                if len(groups) < 2 or groups[0] is None or groups[1] is None:
                    continue
                name, value = groups[0].strip(), groups[1].strip()
                if name in metrics:
                    logs.append(MetricLog(stamp, name, value))
    if not any(log.name == metrics[0] for log in logs):
        return [MetricLog(ZERO_TIME, metrics[0], UNAVAILABLE)]
    return logs


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _instant(stamp: str) -> datetime:
    text = re.sub(r"(\.\d{6})\d+", r"\1", stamp).replace("Z", "+00:00")
    return datetime.fromisoformat(text)


def observation(logs: Sequence[MetricLog], names: Sequence[str]) -> dict[str, Any]:
    """``status.observation`` as the trial controller's getMetrics builds it: min, max, latest per metric."""
    metrics = {n: {"name": n, "min": UNAVAILABLE, "max": UNAVAILABLE, "latest": UNAVAILABLE} for n in names}
    latest_at: dict[str, datetime] = {}
    for log in logs:
        metric = metrics.get(log.name)
        if metric is None:
            continue
        value = _float(log.value)
        if value is not None:
            if metric["min"] == UNAVAILABLE:
                metric["min"] = metric["max"] = log.value
            elif value < float(metric["min"]):
                metric["min"] = log.value
            elif value > float(metric["max"]):
                metric["max"] = log.value
        when = _instant(log.timestamp)
        seen = latest_at.get(log.name)
        if seen is None or not seen > when:
            latest_at[log.name] = when
            metric["latest"] = log.value
    return {"metrics": list(metrics.values())}


def objective_value(trial: Mapping[str, Any]) -> str:
    """The value a trial's objective is ranked by: min, max or latest per its metric strategy."""
    spec = trial.get("spec") or {}
    objective = spec.get("objective") or {}
    name = objective.get("objectiveMetricName")
    strategy = next(
        (s.get("value") for s in objective.get("metricStrategies") or [] if s.get("name") == name), None
    )
    for metric in ((trial.get("status") or {}).get("observation") or {}).get("metrics") or []:
        if metric.get("name") != name:
            continue
        if strategy == "min":
            return str(metric["latest"] if metric.get("min") == UNAVAILABLE else metric.get("min"))
        if strategy == "max":
            return str(metric["latest"] if metric.get("max") == UNAVAILABLE else metric.get("max"))
        if strategy == "latest":
            return str(metric.get("latest"))
    return UNAVAILABLE
