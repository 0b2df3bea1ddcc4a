"""hub_config/grafana/: the dashboard parses, and every PromQL expression names metrics that exist.

"Exist" means: the hybridhub service exposes them (a real ``Metrics`` object, rendered and parsed),
HybridSpawner defines them in the hub's registry (``spawner.spawning.metrics``), or they are JupyterHub's own
and listed in ``JUPYTERHUB_METRICS`` below, checked against ``jupyterhub.metrics``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jupyterhub.metrics
import pytest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

import spawner.spawning.metrics
from spawner.core.model import ClusterHealth, ClusterInventory, Health, NodeCapacity, Pool, Role
from spawner.placement.rank import availability
from spawner.service.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "hub_config" / "grafana" / "hybridhub-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# JupyterHub's own metrics the dashboard may use: name -> (type, labels)
JUPYTERHUB_METRICS = {
    "jupyterhub_server_spawn_duration_seconds": ("histogram", {"status"}),
    "jupyterhub_running_servers": ("gauge", set()),
}
# what the dashboard must show (the families, as their code defines them)
REQUIRED = {
    "hybridhub_gpus_free",
    "hybridhub_gpus_total",
    "hybridhub_cluster_health",
    "hybridhub_spawn_placements",
    "hybridhub_placements",
    "hybridhub_spawn_fallbacks",
    "hybridhub_spawn_refusals",
    "hybridhub_spawn_placement_seconds",
    "hybridhub_placement_seconds",
    "hybridhub_reservations",
    "hybridhub_run_moves",
    "hybridhub_run_move_wait_seconds",
    "hybridhub_run_longest_wait_seconds",
    "hybridhub_runs_waiting",
    "hybridhub_cloud_gpu_hours",
    "hybridhub_cloud_gpu_hours_team",
    "jupyterhub_server_spawn_duration_seconds",
}
# the series each metric type exposes, and the labels they add
SERIES = {
    "counter": {"_total": set()},
    "gauge": {"": set()},
    "histogram": {"_bucket": {"le"}, "_count": set(), "_sum": set()},
    "summary": {"": {"quantile"}, "_count": set(), "_sum": set()},
}  # (and *_created, which the dashboard has no use for)
COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")

FUNCTIONS = {
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "topk",
    "bottomk",
    "quantile",
    "stddev",
    "group",
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "histogram_quantile",
    "label_values",
    "abs",
    "clamp_min",
    "clamp_max",
    "round",
    "vector",
    "scalar",
    "absent",
    "changes",
    "resets",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "sum_over_time",
    "last_over_time",
}
GROUPING = ("by", "without", "on", "ignoring", "group_left", "group_right")
OPERATORS = {"and", "or", "unless", "bool", "offset"}
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range", "__range_s", "__interval_ms"}


# ---------------------------------------------------------------------------------------------- metrics


Known = dict[str, tuple[str, set[str]]]  # series -> (the metric family, its label names)


def _series_of(metric: MetricWrapperBase) -> Known:
    labels = set(metric._labelnames)
    return {
        metric._name + suffix: (metric._name, labels | extra)
        for suffix, extra in SERIES[metric._type].items()
    }


def _module_metrics(module: Any) -> dict[str, MetricWrapperBase]:
    return {m._name: m for m in vars(module).values() if isinstance(m, MetricWrapperBase)}


def service_series() -> Known:
    """The service's exposition, rendered from a real Metrics object with one node, cluster and answer."""
    node = NodeCapacity(
        name="n1",
        pool="gpu",
        ready=True,
        schedulable=True,
        gpu_product="NVIDIA-L40S",
        gpu_memory_mib=46068,
        gpus_allocatable=4,
        gpus_requested=1,
        cpu_allocatable=32.0,
        cpu_requested=1.0,
        memory_allocatable=2**37,
        memory_requested=2**30,
    )
    inventory = ClusterInventory("onprem", Role.ONPREM, (Pool("gpu"),), (node,), synced=True)
    metrics = Metrics(
        lambda: availability([inventory]),
        lambda: {"onprem": ClusterHealth("onprem", Health.HEALTHY)},
        lambda: 1,
    )
    metrics.placed("onprem", "placed", 0.001)
    metrics.leftovers.labels("onprem").inc()
    metrics.moved("onprem", "eks", False, 12.0)
    metrics.watch_runs(lambda: {"onprem": (1, 60.0)}, lambda: {"ada": 3600.0}, {"vision": frozenset({"ada"})})
    series: Known = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        if family.name.endswith("_created"):  # the text parser makes a family of each *_created
            continue
        for sample in family.samples:
            series.setdefault(sample.name, (family.name, set()))[1].update(sample.labels)
    # the rendering names what the metric objects declare, so hub metrics may be derived the same way
    for metric in (metrics.placements, metrics.latency, metrics.leftovers, metrics.moves, metrics.move_waits):
        for name, known in _series_of(metric).items():
            assert series[name] == known
    return series


def hub_series() -> Known:
    """HybridSpawner's metrics in the hub's registry (JupyterHub serves them at /hub/metrics)."""
    metrics = _module_metrics(spawner.spawning.metrics)
    assert metrics, "spawner.spawning.metrics defines no metrics"
    return {name: known for m in metrics.values() for name, known in _series_of(m).items()}


def jupyterhub_series() -> Known:
    defined = _module_metrics(jupyterhub.metrics)
    series: Known = {}
    for name in JUPYTERHUB_METRICS:
        series.update(_series_of(defined[name]))
    return series


@pytest.fixture(scope="module")
def known() -> Known:
    """Every series the dashboard may use -> its family and label names."""
    return {**service_series(), **hub_series(), **jupyterhub_series()}


# label values the code can emit, for matchers that name one
LABEL_VALUES = {
    ("hybridhub_cluster_health", "state"): {h.value for h in Health},
    ("jupyterhub_server_spawn_duration_seconds", "status"): {
        s.value for s in jupyterhub.metrics.ServerSpawnStatus
    },
}


# ---------------------------------------------------------------------------------------------- PromQL


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression (or a Grafana label_values() query)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(rf"\b(?:{'|'.join(GROUPING)})\s*\([^)]*\)", "", text)  # grouping labels
    text = re.sub(r"\b\d+(?:ms|s|m|h|d|w|y)\b", "", text)  # durations (offset 5m)
    text = re.sub(r"\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\b", "", text)  # numbers
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group()
        if text[match.end() :].lstrip().startswith("("):
            assert word in FUNCTIONS, f"unknown PromQL function {word!r} in {expr!r}"
        elif word not in OPERATORS:
            names.add(word)
    if expr.startswith("label_values("):  # Grafana's: label_values(metric, label); the label is no metric
        names.discard(expr.rsplit(",", 1)[1].strip(" )"))
    return names


def selectors(expr: str) -> list[tuple[str, dict[str, tuple[str, str]]]]:
    """(metric, {label: (operator, value)}) for each selector with matchers."""
    found = []
    for match in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}", expr):
        matchers = re.findall(
            r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', match.group(2)
        )
        found.append((match.group(1), {label: (op, value) for label, op, value in matchers}))
    return found


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (cluster, product) (hybridhub_gpus_free{cluster=~"$cluster"})', {"hybridhub_gpus_free"}),
        ("histogram_quantile(0.99, sum by (le) (rate(x_bucket[$__rate_interval])))", {"x_bucket"}),
        ('max by (c) (a{s="d"}) + 2 * max(b) by (c) and on(c) c_total offset 5m', {"a", "b", "c_total"}),
        ("label_values(hybridhub_cluster_health, cluster)", {"hybridhub_cluster_health"}),
        ("sum(rate(foo_total[1e3s]))", {"foo_total"}),
    ],
)
def test_the_promql_reader(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_the_promql_reader_refuses_unknown_functions() -> None:
    with pytest.raises(AssertionError, match="unknown PromQL function"):
        metric_names("holt_winters(x[5m], 0.5, 0.5)")


# ---------------------------------------------------------------------------------------------- dashboard


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # a collapsed row holds its panels
    return panels


def expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in all_panels(dashboard) for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def test_dashboard_is_grafana_json(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert "id" not in dashboard or dashboard["id"] is None  # an id belongs to one Grafana's database
    panels = all_panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["title"] and panel["type"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & mine, f"panel {panel['title']!r} overlaps another"
        cells |= mine


def test_datasource_and_cluster_variables(dashboard: dict[str, Any], known: Known) -> None:
    found = variables(dashboard)
    assert found["datasource"]["type"] == "datasource" and found["datasource"]["query"] == "prometheus"
    cluster = found["cluster"]
    assert cluster["type"] == "query" and cluster["datasource"] == DATASOURCE
    query = cluster["query"]["query"]
    match = re.fullmatch(r"label_values\((\w+),\s*cluster\)", query)
    assert match and "cluster" in known[match.group(1)][1]
    assert cluster["definition"] == query
    assert cluster["includeAll"] and cluster["allValue"] == ".*"  # "All" includes the empty cluster label


def test_every_panel_and_target_has_the_datasource(dashboard: dict[str, Any]) -> None:
    for panel in all_panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel.get("datasource") == DATASOURCE, panel["title"]
        targets = panel.get("targets") or []
        assert targets, panel["title"]
        assert len({t["refId"] for t in targets}) == len(targets)
        for target in targets:
            assert target.get("datasource") == DATASOURCE, panel["title"]
            assert target["expr"].strip()


def test_every_metric_exists(dashboard: dict[str, Any], known: Known) -> None:
    unknown = {
        (name, expr) for expr in expressions(dashboard) for name in metric_names(expr) if name not in known
    }
    assert not unknown, f"metrics no code defines: {sorted(unknown)}"
    used = {known[name][0] for expr in expressions(dashboard) for name in metric_names(expr)}
    assert used >= REQUIRED, f"not shown: {sorted(REQUIRED - used)}"


def test_label_matchers_name_real_labels_and_values(dashboard: dict[str, Any], known: Known) -> None:
    for expr in expressions(dashboard):
        for metric, matchers in selectors(expr):
            family, labels = known[metric]
            for label, (op, value) in matchers.items():
                assert label in labels, f"{metric} has no label {label!r}: {expr}"
                values = LABEL_VALUES.get((family, label))
                if values is not None and op in ("=", "!=") and "$" not in value:
                    assert value in values, f"{metric}{{{label}={value!r}}} never happens: {expr}"


def test_rates_and_quantiles_fit_the_metric_types(dashboard: dict[str, Any]) -> None:
    for expr in expressions(dashboard):
        for name in re.findall(r"\b(?:rate|irate|increase)\(\s*([A-Za-z_:][A-Za-z0-9_:]*)", expr):
            assert name.endswith(COUNTER_SUFFIXES), f"rate of a gauge: {expr}"
        if "histogram_quantile" in expr:
            assert all(n.endswith("_bucket") for n in metric_names(expr)), expr
            assert re.search(r"\bby\s*\([^)]*\ble\b", expr), f"the quantile needs `by (le)`: {expr}"


def test_variables_used_are_defined(dashboard: dict[str, Any]) -> None:
    defined = set(variables(dashboard)) | BUILTIN_VARIABLES
    text = json.dumps(dashboard["panels"])
    used = set(re.findall(r"\$\{?(\w+)", text))
    assert used <= defined, sorted(used - defined)


def test_jupyterhub_metrics_are_jupyterhubs() -> None:
    """The allow-list names JupyterHub metrics as jupyterhub/metrics.py defines them."""
    source = Path(jupyterhub.metrics.__file__).read_text()
    defined = _module_metrics(jupyterhub.metrics)
    for name, (kind, labels) in JUPYTERHUB_METRICS.items():
        assert name in defined, name
        assert defined[name]._type == kind and set(defined[name]._labelnames) == labels
        assert repr(name.removeprefix("jupyterhub_")) in source  # the definition, by its short name
    assert jupyterhub.metrics.metrics_prefix == "jupyterhub"
