"""The cloud budget: per user and per team, cloud GPU-hours per period; past it, runs wait for on-prem.

Pure: the service meters what its cloud clusters' GPU pods hold (``charges``, from the inventory,
every admission pass) into the store's ledger, and asks ``over_budget`` before a run bursts. A
notebook and a run both count: a cloud GPU costs the same whoever holds it. What is metered is what
the inventory saw bound, so a run counts from its pods' binding to their end, not from its
submission.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

__all__ = [
    "PERIODS",
    "CloudBudget",
    "Team",
    "charges",
    "over_budget",
    "parse_budget",
    "period_bounds",
]

PERIODS = ("day", "week", "month")
ANYONE = "*"  # in the users' budgets: everyone without a budget of their own


@dataclass(frozen=True)
class Team:
    hours: float
    members: frozenset[str]


@dataclass(frozen=True)
class CloudBudget:
    """GPU-hours per ``period``, per user (``*``: anyone not named) and per team; empty: no budget."""

    period: str = "month"
    users: Mapping[str, float] = field(default_factory=dict)
    teams: Mapping[str, Team] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.users or self.teams)


def _hours(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number >= 0 and math.isfinite(number) else None


def parse_budget(period: str, users: Mapping[str, object], teams: Mapping[str, object]) -> CloudBudget | str:
    """The budget from the service's settings, or what is wrong with them, in a sentence."""
    if period not in PERIODS:
        return f"run_cloud_budget_period must be one of {', '.join(PERIODS)}, not {period!r}"
    user_hours: dict[str, float] = {}
    for user, value in users.items():
        hours = _hours(value)
        if not isinstance(user, str) or not user or hours is None:
            return f"run_cloud_budget_gpu_hours[{user!r}]: {value!r} is not a number of GPU-hours (0 or more)"
        user_hours[user] = hours
    team_budgets: dict[str, Team] = {}
    for team, spec in teams.items():
        where = f"run_cloud_budget_teams[{team!r}]"
        if not isinstance(spec, Mapping) or set(spec) != {"gpu_hours", "members"}:
            return f'{where} must be {{"gpu_hours": N, "members": [user, ...]}}, not {spec!r}'
        hours = _hours(spec["gpu_hours"])
        if hours is None:
            return f"{where}: gpu_hours {spec['gpu_hours']!r} is not a number of GPU-hours (0 or more)"
        members = spec["members"]
        if not isinstance(members, list | tuple) or not all(isinstance(m, str) and m for m in members):
            return f"{where}: members must be a list of user names, not {members!r}"
        team_budgets[str(team)] = Team(hours, frozenset(members))
    return CloudBudget(period, user_hours, team_budgets)


def period_bounds(now: datetime, period: str) -> tuple[datetime, datetime]:
    """The UTC period ``now`` falls in: [start, end). Weeks start on Monday, as ISO weeks do."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == "month":
        start = day.replace(day=1)
        end = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
        return start, end
    raise ValueError(f"unknown period {period!r}")


def charges(
    gpu_pods: Iterable[tuple[str, str, int]],
    notebooks: Mapping[tuple[str, str], str],
    run_namespaces: Mapping[str, str],
    seconds: float,
) -> dict[str, float]:
    """GPU-seconds per user for ``seconds`` of the cloud pods that hold GPUs, as (namespace, pod,
    GPUs): a notebook pod is its user's (``notebooks``, by namespace and pod), a pod in a user's run
    namespace is that user's (``run_namespaces``, namespace to user); any other pod is nobody's here
    (a team's own workloads, a system pod) and is not charged."""
    found: dict[str, float] = {}
    if seconds <= 0:
        return found
    for namespace, pod, gpus in gpu_pods:
        user = notebooks.get((namespace, pod)) or run_namespaces.get(namespace)
        if user and gpus > 0:
            found[user] = found.get(user, 0.0) + gpus * seconds
    return found


def _used(hours: float) -> str:
    if hours == 0:
        return "0"
    return f"{hours:.1f}" if hours >= 0.1 else f"{hours:.2g}"


def _budget(hours: float) -> str:
    return f"{hours:.3g}" if hours < 1 else f"{hours:g}"


def over_budget(user: str, used: Mapping[str, float], budget: CloudBudget, period_end: datetime) -> str:
    """Why ``user`` may not burst to the cloud now, in a sentence ("" when they may): their own
    GPU-hours this period (``used``: GPU-seconds per user) are spent, or a team of theirs has spent
    the team's. A budget of 0 closes the cloud to them."""
    until = f"this {budget.period}, until {period_end.strftime('%Y-%m-%d %H:%M')} UTC"
    mine = budget.users.get(user, budget.users.get(ANYONE))
    spent = used.get(user, 0.0) / 3600
    if mine is not None and spent >= mine:
        return f"you have used {_used(spent)} of your {_budget(mine)} cloud GPU-hours {until}"
    for name in sorted(budget.teams):
        team = budget.teams[name]
        if user not in team.members:
            continue
        spent = sum(used.get(member, 0.0) for member in team.members) / 3600
        if spent >= team.hours:
            hours = f"{_used(spent)} of its {_budget(team.hours)} cloud GPU-hours"
            return f"your team {name} has used {hours} {until}"
    return ""
