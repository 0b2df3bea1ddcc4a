"""The cloud budget's pure rules: settings, periods, who a cloud GPU pod is charged to, who is over."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from spawner.service.app import HybridHubService
from spawner.service.runs.budget import CloudBudget, Team, charges, over_budget, parse_budget, period_bounds

HOUR = 3600.0


@pytest.mark.parametrize(
    ("period", "users", "teams", "problem"),
    [
        ("month", {"*": 10, "ada": 2.5}, {"vision": {"gpu_hours": 20, "members": ["ada", "bob"]}}, ""),
        ("week", {}, {}, ""),
        ("year", {}, {}, "run_cloud_budget_period must be one of day, week, month, not 'year'"),
        ("day", {"ada": -1}, {}, "run_cloud_budget_gpu_hours['ada']: -1 is not a number of GPU-hours"),
        ("day", {"ada": "10"}, {}, "run_cloud_budget_gpu_hours['ada']: '10' is not a number"),
        ("day", {"ada": True}, {}, "run_cloud_budget_gpu_hours['ada']: True is not"),
        ("day", {"ada": float("inf")}, {}, "run_cloud_budget_gpu_hours['ada']: inf is not"),
        ("day", {"": 1}, {}, "run_cloud_budget_gpu_hours['']"),
        ("day", {}, {"v": 20}, 'run_cloud_budget_teams[\'v\'] must be {"gpu_hours": N, "members"'),
        ("day", {}, {"v": {"gpu_hours": 20}}, "run_cloud_budget_teams['v'] must be"),
        ("day", {}, {"v": {"gpu_hours": None, "members": []}}, "run_cloud_budget_teams['v']: gpu_hours None"),
        (
            "day",
            {},
            {"v": {"gpu_hours": 1, "members": "ada"}},
            "run_cloud_budget_teams['v']: members must be",
        ),
        ("day", {}, {"v": {"gpu_hours": 1, "members": ["ada", 3]}}, "run_cloud_budget_teams['v']: members"),
    ],
)
def test_settings_name_what_is_wrong(period: str, users: Any, teams: Any, problem: str) -> None:
    found = parse_budget(period, users, teams)
    if problem:
        assert isinstance(found, str) and found.startswith(problem), found
    else:
        assert isinstance(found, CloudBudget) and found.period == period


def test_the_service_refuses_a_wrong_budget_at_start_naming_it() -> None:
    service = HybridHubService(run_cloud_budget_gpu_hours={"ada": "lots"})
    with pytest.raises(SystemExit, match=r"run_cloud_budget_gpu_hours\['ada'\]: 'lots'"):
        service.run_settings()
    ok = HybridHubService(
        run_cloud_budget_period="week",
        run_cloud_budget_gpu_hours={"*": 5},
        run_cloud_budget_teams={"vision": {"gpu_hours": 8, "members": ["ada"]}},
    )
    assert ok.run_settings().cloud_budget == CloudBudget(
        "week", {"*": 5.0}, {"vision": Team(8.0, frozenset({"ada"}))}
    )
    assert not HybridHubService().run_settings().cloud_budget.active  # no budget by default


@pytest.mark.parametrize(
    ("now", "period", "start", "end"),
    [
        ("2026-12-05T07:30:00+00:00", "day", "2026-12-05", "2026-12-06"),
        ("2026-12-05T07:30:00+00:00", "week", "2026-11-30", "2026-12-07"),  # a Saturday; weeks from Monday
        ("2026-11-30T00:00:00+00:00", "week", "2026-11-30", "2026-12-07"),  # Monday 00:00 starts one
        ("2026-12-05T07:30:00+00:00", "month", "2026-12-01", "2027-01-01"),  # December ends in a new year
        ("2026-02-28T23:59:59+00:00", "month", "2026-02-01", "2026-03-01"),
        ("2026-12-01T00:30:00+05:00", "month", "2026-11-01", "2026-12-01"),  # UTC decides: still November
    ],
)
def test_periods_are_utc_days_iso_weeks_and_months(now: str, period: str, start: str, end: str) -> None:
    found = period_bounds(datetime.fromisoformat(now), period)
    assert found == (
        datetime.fromisoformat(start).replace(tzinfo=UTC),
        datetime.fromisoformat(end).replace(tzinfo=UTC),
    )


def test_a_cloud_gpu_pod_is_charged_to_its_notebook_user_or_run_namespace_and_nothing_else() -> None:
    pods = [
        ("jupyterhub", "jupyter-ada", 2),  # ada's notebook
        ("hybridhub-runs-ada", "train-0", 4),  # ada's run
        ("hybridhub-runs-bob", "sweep-x-1", 1),  # bob's trial
        ("kube-system", "dcgm-exporter", 1),  # nobody's: not charged
        ("jupyterhub", "jupyter-carol", 0),  # holds no GPU
    ]
    notebooks = {("jupyterhub", "jupyter-ada"): "ada", ("jupyterhub", "jupyter-carol"): "carol"}
    namespaces = {"hybridhub-runs-ada": "ada", "hybridhub-runs-bob": "bob"}
    assert charges(pods, notebooks, namespaces, 10.0) == {"ada": 60.0, "bob": 10.0}
    assert charges(pods, notebooks, namespaces, 0.0) == {}


END = datetime(2027, 1, 1, tzinfo=UTC)
BUDGET = CloudBudget(
    "month",
    {"*": 10.0, "ada": 2.0, "zed": 0.0, "big": 1000.0},
    {"vision": Team(5.0, frozenset({"bob", "carol"})), "nlp": Team(100.0, frozenset({"carol"}))},
)


@pytest.mark.parametrize(
    ("user", "used", "says"),
    [
        ("ada", {"ada": 1.9 * HOUR}, ""),  # under her own 2
        (
            "ada",
            {"ada": 2 * HOUR},
            "you have used 2.0 of your 2 cloud GPU-hours this month, until 2027-01-01 00:00 UTC",
        ),
        ("dan", {"dan": 9 * HOUR, "ada": 50 * HOUR}, ""),  # the default of 10; ada's use is hers
        ("dan", {"dan": 10.04 * HOUR}, "you have used 10.0 of your 10 cloud GPU-hours"),
        ("zed", {}, "you have used 0 of your 0 cloud GPU-hours"),  # 0 closes the cloud
        ("bob", {"bob": 3 * HOUR, "carol": 1 * HOUR}, ""),  # the team has 4 of 5
        (
            "bob",
            {"bob": 3 * HOUR, "carol": 2.5 * HOUR},
            "your team vision has used 5.5 of its 5 cloud GPU-hours",
        ),
        ("carol", {"bob": 3 * HOUR, "carol": 2.5 * HOUR}, "your team vision has used 5.5"),  # in two teams
        ("ada", {"bob": 30 * HOUR}, ""),  # not in the team
        ("eve", {"eve": 36.0}, ""),  # 0.01 h
        ("big", {"big": 1500 * HOUR}, "you have used 1500.0 of your 1000 cloud GPU-hours"),
    ],
)
def test_over_budget_says_whose_hours_are_spent(user: str, used: dict[str, float], says: str) -> None:
    found = over_budget(user, used, BUDGET, END)
    assert found.startswith(says) if says else found == "", found


def test_no_budget_closes_nothing() -> None:
    assert over_budget("ada", {"ada": 1e9}, CloudBudget(), END) == ""
    small = CloudBudget("day", {"ada": 1.0})
    assert over_budget("ada", {"ada": 0.995 * HOUR}, small, END) == ""
    assert "0.99" not in over_budget("ada", {"ada": 1.5 * HOUR}, small, END)
    assert over_budget("ada", {"ada": 1.5 * HOUR}, small, END).startswith("you have used 1.5 of your 1")


def test_the_metric_collector_shows_moves_lag_and_cloud_hours_by_user_and_team() -> None:
    from spawner.service.metrics import Metrics

    metrics = Metrics(dict, dict, lambda: 0)
    lag = {"onprem": (3, 125.0)}
    used = {"ada": 2 * HOUR, "bob": 0.5 * HOUR}
    metrics.watch_runs(lambda: lag, lambda: used, {"vision": frozenset({"ada", "bob", "carol"})})
    metrics.moved("onprem", "eks", False, 42.0)
    metrics.moved("onprem", "eks", False, 7.0)
    metrics.moved("eks", "onprem", True, 90.0)
    lines = set(metrics.render().decode().splitlines())
    for line in (
        'hybridhub_runs_waiting{cluster="onprem"} 3.0',
        'hybridhub_run_longest_wait_seconds{cluster="onprem"} 125.0',
        'hybridhub_cloud_gpu_hours{user="ada"} 2.0',
        'hybridhub_cloud_gpu_hours{user="bob"} 0.5',
        'hybridhub_cloud_gpu_hours_team{team="vision"} 2.5',
        'hybridhub_run_moves_total{direction="out",source="onprem",target="eks"} 2.0',
        'hybridhub_run_moves_total{direction="back",source="eks",target="onprem"} 1.0',
        "hybridhub_run_move_wait_seconds_count 3.0",
        'hybridhub_run_move_wait_seconds_bucket{le="60.0"} 2.0',
    ):
        assert line in lines, line
    # scraped live: a later scrape sees the values of then
    lag["onprem"] = (0, 0.0)
    assert 'hybridhub_runs_waiting{cluster="onprem"} 0.0' in metrics.render().decode()
