"""What %gpus, %runs and %logs show, as plain text and escaped HTML: pure formatting, no I/O."""

from __future__ import annotations

import html
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FAILED_PHASES",
    "FINAL_PHASES",
    "ClusterGpus",
    "GpusView",
    "LocalGpu",
    "ProductGpus",
    "Progress",
    "RunLine",
    "RunsView",
    "TrialLine",
    "bar",
    "duration",
    "experiment_trials",
    "gpus_view",
    "log_lines",
    "runs_view",
    "status_line",
    "trainjob_progress",
    "visible",
    "why",
]

# The phases after which a run changes no more: Argo's, and the final conditions of the other kinds.
FINAL_PHASES = frozenset({"Succeeded", "Complete", "Failed", "Error"})
FAILED_PHASES = frozenset({"Failed", "Error"})

# Without --all, %runs leaves out runs that ended and were submitted longer ago than this.
RECENT_SECONDS = 24 * 3600.0
BAR_WIDTH = 20
# Katib's Experiment status names each trial in the list of its state.
_TRIAL_LISTS = (
    ("Succeeded", "succeededTrialList"),
    ("Running", "runningTrialList"),
    ("Pending", "pendingTrialList"),
    ("Failed", "failedTrialList"),
    ("MetricsUnavailable", "metricsUnavailableTrialList"),
    ("EarlyStopped", "earlyStoppedTrialList"),
    ("Killed", "killedTrialList"),
)
_HEALTH_COLOURS = {"healthy": "#2e7d32", "degraded": "#ef6c00", "down": "#c62828"}
_GIB = 1024**3


def _e(value: object) -> str:
    """Text made safe inside HTML, quotes too, since names come from users."""
    return html.escape(str(value), quote=True)


def duration(seconds: float | None) -> str:
    """A short human duration: 45s, 3m, 2h 5m, 3d 4h; "unknown" without a figure."""
    if seconds is None:
        return "unknown"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h}h {m}m" if m else f"{h}h"
    d, h = divmod(s // 3600, 24)
    return f"{d}d {h}h" if h else f"{d}d"


def bar(part: int, whole: int, width: int = BAR_WIDTH) -> str:
    """``part`` of ``whole`` as a bar of ``width`` cells, filled from the left; a part above zero shows."""
    if whole <= 0:
        return "·" * width
    filled = round(width * min(max(part, 0), whole) / whole)
    if part > 0 and filled == 0:
        filled = 1
    return "█" * filled + "░" * (width - filled)


def _name(row: Mapping[str, Any]) -> str:
    return f"{row.get('kind', '?')}/{row.get('name', '?')}"


def why(row: Mapping[str, Any]) -> str:
    """Why a run is where it is: its place in the queue while queued, else the service's reason."""
    queue = row.get("queue")
    if isinstance(queue, Mapping):
        head = f"position {queue.get('position', '?')} for {queue.get('cluster', '?')}"
        head += f", expected wait {duration(queue.get('expected_wait'))}"
        reason = str(queue.get("reason") or "")
        return f"{head}: {reason}" if reason else head
    return str(row.get("reason") or "")


def status_line(row: Mapping[str, Any]) -> str:
    """One sentence on where a run stands, as wait() prints it each time it changes."""
    phase = str(row.get("phase") or "Unknown")
    if isinstance(row.get("queue"), Mapping):
        return f"{_name(row)} is queued: {why(row)}"
    where = f" on {row['cluster']}" if row.get("cluster") else ""
    reason = str(row.get("reason") or "")
    return f"{_name(row)} is {phase}{where}" + (f": {reason}" if reason else "")


# ---------------------------------------------------------------------------------------------- %gpus


@dataclass(frozen=True)
class ProductGpus:
    """One GPU product in one cluster: how many there are, how many are free, the most on one node."""

    product: str
    total: int
    free: int
    largest_free: int
    # GPUs one new node of an elastic pool would add; 0 where nothing grows.
    new_node_gpus: int = 0
    # the lag: GPUs that runs queued here ask for, and the expected wait of a run of N GPUs placed
    # now (seconds; None: it never fits here)
    queued_gpus: int = 0
    waits: tuple[tuple[int, float | None], ...] = ()


@dataclass(frozen=True)
class ClusterGpus:
    """A cluster's health and GPUs, with the user's runs that wait for it."""

    name: str
    role: str
    health: str
    reason: str
    synced: bool
    products: tuple[ProductGpus, ...]
    queued: int = 0
    # The shortest expected wait of the user's runs queued here; None when unknown or none wait.
    expected_wait: float | None = None


@dataclass(frozen=True)
class LocalGpu:
    """One GPU of this notebook's own pod, as NVML on its server reports it."""

    index: int
    name: str
    memory_used: int | None
    memory_total: int | None
    utilization: int | None
    temperature: int | None


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _opt_int(value: Any) -> int | None:
    return None if value is None else _int(value)


@dataclass(frozen=True)
class GpusView:
    """%gpus: free out of total GPUs per cluster and product, the clusters' health, and the expected wait
    of the user's queued runs; this pod's own GPUs when its server has NVML."""

    clusters: tuple[ClusterGpus, ...]
    local: tuple[LocalGpu, ...] = ()
    # Why this pod's own GPUs are not shown, or the driver version when they are.
    local_note: str = ""
    notes: tuple[str, ...] = ()

    def text(self) -> str:
        lines: list[str] = []
        width = max((len(p.product) for c in self.clusters for p in c.products), default=0)
        for c in self.clusters:
            health = c.health + (f": {c.reason}" if c.reason else "")
            lines.append(f"{c.name} ({c.role}, {health})")
            if not c.products:
                lines.append("  no GPUs" if c.synced else "  not synced yet: its GPUs are not known")
            for p in c.products:
                lines.append(f"  {p.product:<{width}}  {bar(p.free, p.total)}  {_product_figures(p)}")
            if c.queued:
                lines.append(f"  {_queued(c)}")
        if self.local or self.local_note:
            lines.append(f"this notebook: {self.local_note}" if self.local_note else "this notebook:")
            lines.extend(f"  {_local_figures(g)}" for g in self.local)
        lines.extend(self.notes)
        return "\n".join(lines) if lines else "no clusters"

    def html(self) -> str:
        out = ['<div class="hybridhub-gpus"><table>']
        for c in self.clusters:
            colour = _HEALTH_COLOURS.get(c.health, "#757575")
            reason = f": {_e(c.reason)}" if c.reason else ""
            out.append(
                f'<tr><th colspan="3" style="text-align:left">{_e(c.name)} <small>({_e(c.role)}, '
                f'<span style="color:{colour}">{_e(c.health)}</span>{reason})</small></th></tr>'
            )
            if not c.products:
                empty = "no GPUs" if c.synced else "not synced yet: its GPUs are not known"
                out.append(f'<tr><td colspan="3">{empty}</td></tr>')
            for p in c.products:
                share = 0 if p.total <= 0 else round(100 * min(max(p.free, 0), p.total) / p.total)
                out.append(
                    f"<tr><td>{_e(p.product)}</td>"
                    '<td><div style="width:10em;height:0.8em;background:#e0e0e0">'
                    f'<div style="width:{share}%;height:100%;background:#43a047"></div></div></td>'
                    f"<td>{_e(_product_figures(p))}</td></tr>"
                )
            if c.queued:
                out.append(f'<tr><td colspan="3"><i>{_e(_queued(c))}</i></td></tr>')
        out.append("</table>")
        if self.local or self.local_note:
            note = f": {_e(self.local_note)}" if self.local_note else ""
            out.append(f"<p><b>this notebook</b>{note}</p>")
            if self.local:
                out.append(
                    "<ul>" + "".join(f"<li>{_e(_local_figures(g))}</li>" for g in self.local) + "</ul>"
                )
        out.extend(f"<p>{_e(n)}</p>" for n in self.notes)
        out.append("</div>")
        return "".join(out)

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        return self.html()


def _product_figures(p: ProductGpus) -> str:
    text = f"{p.free}/{p.total} free"
    if p.free:
        text += f", at most {p.largest_free} on one node"
    if p.new_node_gpus:
        text += f", a new node adds {p.new_node_gpus}"
    if p.queued_gpus:
        text += f", {p.queued_gpus} queued"
    later = [
        f"{gpus}: never fits" if seconds is None else f"{gpus}: about {duration(seconds)}"
        for gpus, seconds in p.waits
        if seconds is None or seconds > 0
    ]
    if later:
        text += "; a run of " + ", ".join(later)
    return text


def _queued(c: ClusterGpus) -> str:
    verb = "waits" if c.queued == 1 else "wait"
    return f"{c.queued} of your runs {verb} here; expected wait {duration(c.expected_wait)}"


def _local_figures(g: LocalGpu) -> str:
    parts = [f"{g.index}: {g.name}"]
    if g.utilization is not None:
        parts.append(f"{g.utilization}% busy")
    if g.memory_total:
        used = (g.memory_used or 0) / _GIB
        parts.append(f"{used:.1f}/{g.memory_total / _GIB:.1f} GiB")
    if g.temperature is not None:
        parts.append(f"{g.temperature}°C")
    return ", ".join(parts)


def _waits(rows: Any) -> tuple[tuple[int, float | None], ...]:
    """api/capacity's ``expected_wait`` list as (GPUs, seconds) pairs; what does not parse is left out."""
    found: list[tuple[int, float | None]] = []
    for row in rows if isinstance(rows, list) else ():
        if not isinstance(row, Mapping) or _int(row.get("gpus")) <= 0:
            continue
        seconds = row.get("seconds")
        if seconds is not None and not isinstance(seconds, int | float):
            continue
        found.append((_int(row.get("gpus")), None if seconds is None else float(seconds)))
    return tuple(found)


def gpus_view(
    capacity: Mapping[str, Any],
    runs: Sequence[Mapping[str, Any]] = (),
    local: Mapping[str, Any] | None = None,
    notes: Iterable[str] = (),
) -> GpusView:
    """The %gpus view of the service's ``api/capacity`` body, the user's runs and this pod's ``api/gpus``."""
    waits: dict[str, list[float | None]] = {}
    for row in runs:
        queue = row.get("queue")
        if isinstance(queue, Mapping):
            waits.setdefault(str(queue.get("cluster")), []).append(queue.get("expected_wait"))
    clusters = []
    for c in capacity.get("clusters") or ():
        name = str(c.get("name", "?"))
        known = [float(w) for w in waits.get(name, ()) if w is not None]
        products = tuple(
            ProductGpus(
                str(p.get("product") or "unknown GPU"),
                _int(p.get("total")),
                _int(p.get("free")),
                _int(p.get("largest_free")),
                _int(p.get("new_node_gpus")),
                _int(p.get("queued_gpus")),
                _waits(p.get("expected_wait")),
            )
            for p in c.get("products") or ()
        )
        clusters.append(
            ClusterGpus(
                name,
                str(c.get("role") or "?"),
                str(c.get("health") or "unknown"),
                str(c.get("reason") or ""),
                bool(c.get("synced", True)),
                products,
                len(waits.get(name, ())),
                min(known) if known else None,
            )
        )
    local_gpus: tuple[LocalGpu, ...] = ()
    local_note = ""
    if local is not None:
        if local.get("nvml"):
            local_gpus = tuple(
                LocalGpu(
                    _int(g.get("index")),
                    str(g.get("name") or "GPU"),
                    _opt_int(g.get("memory_used")),
                    _opt_int(g.get("memory_total")),
                    _opt_int(g.get("utilization_gpu")),
                    _opt_int(g.get("temperature")),
                )
                for g in local.get("gpus") or ()
            )
            driver = str(local.get("driver") or "")
            local_note = (f"driver {driver}" if driver else "") if local_gpus else "no GPU in this pod"
        else:
            local_note = str(local.get("reason") or "no NVML")
    return GpusView(tuple(clusters), local_gpus, local_note, tuple(notes))


# ---------------------------------------------------------------------------------------------- %runs


@dataclass(frozen=True)
class TrialLine:
    """One Katib trial: its state, the parameters it tried and the latest value of each metric."""

    name: str
    state: str
    parameters: tuple[tuple[str, str], ...] = ()
    metrics: tuple[tuple[str, str], ...] = ()
    best: bool = False

    def text(self) -> str:
        params = " ".join(f"{k}={v}" for k, v in self.parameters)
        metrics = " ".join(f"{k}={v}" for k, v in self.metrics)
        tail = "  (best)" if self.best else ""
        return "  ".join(p for p in (self.name, self.state, params, metrics) if p) + tail


@dataclass(frozen=True)
class Progress:
    """A TrainJob's own report of how far it is (Trainer's ``status.trainerStatus``)."""

    percent: float | None
    remaining: float | None
    metrics: tuple[tuple[str, str], ...] = ()

    def text(self) -> str:
        parts = []
        if self.percent is not None:
            parts.append(f"{bar(round(self.percent), 100, 10)} {self.percent:g}%")
        if self.remaining is not None:
            parts.append(f"about {duration(self.remaining)} left")
        parts.extend(f"{k}={v}" for k, v in self.metrics)
        return ", ".join(parts)


@dataclass(frozen=True)
class RunLine:
    """One row of %runs, with a sweep's trials or a training job's progress below it."""

    kind: str
    name: str
    cluster: str
    phase: str
    gpus: int
    age: float | None
    why: str
    summary: str = ""
    trials: tuple[TrialLine, ...] = ()
    progress: Progress | None = None
    # where it waited before, one sentence per move: "moved from onprem to eks at 14:02: onprem is down"
    moves: tuple[str, ...] = ()

    def cells(self) -> tuple[str, ...]:
        return (self.kind, self.name, self.cluster, self.phase, str(self.gpus), duration(self.age), self.why)


_HEADER = ("KIND", "NAME", "CLUSTER", "PHASE", "GPUS", "AGE", "WHY")


@dataclass(frozen=True)
class RunsView:
    """%runs: each run's kind, name, cluster, phase, GPUs, age and why; a sweep's trials as they arrive."""

    runs: tuple[RunLine, ...]
    # Runs that ended long ago and are left out; %runs --all shows them.
    hidden: int = 0
    notes: tuple[str, ...] = ()

    def text(self) -> str:
        if not self.runs:
            lines = ["no runs"]
        else:
            table = [_HEADER, *(r.cells() for r in self.runs)]
            widths = [max(len(row[i]) for row in table) for i in range(len(_HEADER) - 1)]
            lines = []
            for i, cells in enumerate(table):
                head = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False))
                lines.append(f"{head}  {cells[-1]}".rstrip())
                if i == 0:
                    continue
                run = self.runs[i - 1]
                lines.extend(f"    {extra}" for extra in _details(run))
        if self.hidden:
            lines.append(_hidden_note(self.hidden))
        lines.extend(self.notes)
        return "\n".join(lines)

    def html(self) -> str:
        out = ['<div class="hybridhub-runs"><table><thead><tr>']
        out.extend(f"<th>{h.lower()}</th>" for h in _HEADER)
        out.append("</tr></thead><tbody>")
        for run in self.runs:
            out.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in run.cells()) + "</tr>")
            extra = _details_html(run)
            if extra:
                out.append(f'<tr><td></td><td colspan="{len(_HEADER) - 1}">{extra}</td></tr>')
        out.append("</tbody></table>")
        if not self.runs:
            out.append("<p>no runs</p>")
        if self.hidden:
            out.append(f"<p><i>{_e(_hidden_note(self.hidden))}</i></p>")
        out.extend(f"<p>{_e(n)}</p>" for n in self.notes)
        out.append("</div>")
        return "".join(out)

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        return self.html()


def _hidden_note(hidden: int) -> str:
    runs = "run that ended a day" if hidden == 1 else "runs that ended a day"
    return f"{hidden} {runs} or more after submission not shown: %runs --all shows them"


def moves_of(row: Mapping[str, Any]) -> tuple[str, ...]:
    """The moves of a run between clusters before it started, as sentences, oldest first."""
    out = []
    for m in row.get("moves") or ():
        if not isinstance(m, Mapping):
            continue
        at = str(m.get("at") or "")
        when = f" at {at[11:16]} UTC" if len(at) >= 16 else ""
        head = f"moved from {m.get('from', '?')} to {m.get('to', '?')}{when}"
        reason = str(m.get("reason") or "")
        # the reason starts with the same words; the user reads them once
        prefix = f"moved from {m.get('from')} to {m.get('to')}: "
        prefix_back = f"moved back from {m.get('from')} to {m.get('to')}: "
        for p in (prefix, prefix_back):
            if reason.startswith(p):
                reason = reason[len(p) :]
        out.append(f"{head}: {reason}" if reason else head)
    return tuple(out)


def _details(run: RunLine) -> list[str]:
    out = [run.summary] if run.summary else []
    out.extend(run.moves)
    if run.progress is not None and run.progress.text():
        out.append(f"progress: {run.progress.text()}")
    out.extend(f"trial {t.text()}" for t in run.trials)
    return out


def _details_html(run: RunLine) -> str:
    out = []
    if run.summary:
        out.append(f"<div>{_e(run.summary)}</div>")
    out.extend(f"<div>{_e(m)}</div>" for m in run.moves)
    if run.progress is not None and run.progress.text():
        p = run.progress
        share = 0.0 if p.percent is None else min(max(p.percent, 0.0), 100.0)
        rest = Progress(None, p.remaining, p.metrics).text()
        out.append(
            '<div><div style="display:inline-block;width:10em;height:0.8em;background:#e0e0e0">'
            f'<div style="width:{share:g}%;height:100%;background:#1e88e5"></div></div> '
            f"{_e(f'{p.percent:g}%' if p.percent is not None else '')} {_e(rest)}</div>"
        )
    if run.trials:
        out.append("<table><tr><th>trial</th><th>state</th><th>parameters</th><th>metrics</th></tr>")
        for t in run.trials:
            params = ", ".join(f"{k}={v}" for k, v in t.parameters)
            metrics = ", ".join(f"{k}={v}" for k, v in t.metrics)
            name = f"<b>{_e(t.name)}</b> (best)" if t.best else _e(t.name)
            out.append(
                f"<tr><td>{name}</td><td>{_e(t.state)}</td><td>{_e(params)}</td><td>{_e(metrics)}</td></tr>"
            )
        out.append("</table>")
    return "".join(out)


def _pairs(items: Any, key: str, value: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(i.get(key, "?")), str(i.get(value, ""))) for i in items or () if isinstance(i, Mapping))


def _newest_condition(obj: Mapping[str, Any]) -> str:
    true = [c for c in (obj.get("status") or {}).get("conditions") or () if c.get("status") == "True"]
    if not true:
        return "Created"
    # Times are to the second, so a run that moves fast has ties; a tie goes to the condition set last,
    # which controllers append last.
    newest = max(reversed(true), key=lambda c: str(c.get("lastTransitionTime") or ""))
    return str(newest.get("type") or "Created")


def experiment_trials(
    experiment: Mapping[str, Any], trials: Sequence[Mapping[str, Any]] | None = None
) -> tuple[str, tuple[TrialLine, ...]]:
    """A Katib Experiment's one-line summary and its trials.

    With the Trial objects, each trial shows its parameters and the latest value of each metric as the
    collector reports them. Without them, the Experiment's own status still names every trial by state
    and holds the parameters and metrics of the best one.
    """
    status = experiment.get("status") or {}
    optimal = status.get("currentOptimalTrial") or {}
    best = str(optimal.get("bestTrialName") or "")
    counts = [
        (label, _int(status.get(key)))
        for label, key in (
            ("succeeded", "trialsSucceeded"),
            ("running", "trialsRunning"),
            ("pending", "trialsPending"),
            ("failed", "trialsFailed"),
            ("without metrics", "trialMetricsUnavailable"),
            ("early stopped", "trialsEarlyStopped"),
        )
    ]
    wanted = (experiment.get("spec") or {}).get("maxTrialCount")
    total = f"{_int(status.get('trials'))}" + (f" of {wanted}" if wanted else "")
    summary = f"trials: {total}"
    shown = [f"{n} {label}" for label, n in counts if n]
    if shown:
        summary += f" ({', '.join(shown)})"
    best_metrics = _pairs((optimal.get("observation") or {}).get("metrics"), "name", "latest")
    if best:
        best_params = _pairs(optimal.get("parameterAssignments"), "name", "value")
        found = " ".join(f"{k}={v}" for k, v in (*best_params, *best_metrics))
        summary += f"; best {best}" + (f": {found}" if found else "")
    if trials is not None:
        ordered = sorted(trials, key=lambda t: str((t.get("metadata") or {}).get("creationTimestamp") or ""))
        lines = tuple(
            TrialLine(
                str((t.get("metadata") or {}).get("name") or "?"),
                _newest_condition(t),
                _pairs((t.get("spec") or {}).get("parameterAssignments"), "name", "value"),
                _pairs(((t.get("status") or {}).get("observation") or {}).get("metrics"), "name", "latest"),
                str((t.get("metadata") or {}).get("name")) == best,
            )
            for t in ordered
        )
        return summary, lines
    listed = []
    for state, key in _TRIAL_LISTS:
        for name in status.get(key) or ():
            if name == best:
                params = _pairs(optimal.get("parameterAssignments"), "name", "value")
                listed.append(TrialLine(str(name), state, params, best_metrics, True))
            else:
                listed.append(TrialLine(str(name), state))
    return summary, tuple(listed)


def trainjob_progress(trainjob: Mapping[str, Any]) -> Progress | None:
    """A TrainJob's ``status.trainerStatus`` as progress; None when its trainer reports none."""
    report = (trainjob.get("status") or {}).get("trainerStatus")
    if not isinstance(report, Mapping):
        return None
    percent = report.get("progressPercentage")
    remaining = report.get("estimatedRemainingSeconds")
    return Progress(
        None if percent is None else float(percent),
        None if remaining is None else float(remaining),
        _pairs(report.get("metrics"), "name", "value"),
    )


def _ended_long_ago(row: Mapping[str, Any], recent: float) -> bool:
    return str(row.get("phase")) in FINAL_PHASES and float(row.get("age") or 0.0) > recent


def visible(
    rows: Sequence[Mapping[str, Any]], *, show_all: bool = False, recent: float = RECENT_SECONDS
) -> list[Mapping[str, Any]]:
    """The rows %runs shows, newest first: all of them, or without ``show_all`` those that have not
    ended or were submitted less than ``recent`` seconds ago."""
    ordered = sorted(rows, key=lambda r: float(r.get("age") or 0.0))
    return [r for r in ordered if show_all or not _ended_long_ago(r, recent)]


def runs_view(
    rows: Sequence[Mapping[str, Any]],
    details: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
    *,
    show_all: bool = False,
    recent: float = RECENT_SECONDS,
    notes: Iterable[str] = (),
) -> RunsView:
    """The %runs view of runs() rows, newest first.

    ``details`` maps (kind, name) to a run's ``api/runs/{kind}/{name}`` body, whose ``object`` gives a
    sweep's trials and a training job's progress; its ``trials``, where the server adds them, give
    each trial's parameters and metrics. Without ``show_all``, runs that ended and were submitted more
    than ``recent`` seconds ago are counted, not shown.
    """
    details = details or {}
    shown: list[RunLine] = []
    rows_shown = visible(rows, show_all=show_all, recent=recent)
    for row in rows_shown:
        phase = str(row.get("phase") or "Unknown")
        age = row.get("age")
        kind, name = str(row.get("kind") or "?"), str(row.get("name") or "?")
        body = details.get((kind, name)) or {}
        obj = body.get("object") or {}
        summary, progress = "", None
        trials: tuple[TrialLine, ...] = ()
        if kind == "Experiment" and obj:
            raw = body.get("trials")
            summary, trials = experiment_trials(obj, raw if isinstance(raw, list) else None)
        elif kind == "TrainJob" and obj:
            progress = trainjob_progress(obj)
        shown.append(
            RunLine(
                kind,
                name,
                str(row.get("cluster") or "-"),
                phase,
                _int(row.get("gpus")),
                None if age is None else float(age),
                why(row),
                summary,
                trials,
                progress,
                moves_of(row),
            )
        )
    return RunsView(tuple(shown), len(rows) - len(rows_shown), tuple(notes))


# ---------------------------------------------------------------------------------------------- %logs


def log_lines(lines: Iterable[tuple[str, str]]) -> Iterator[str]:
    """Lines of a run's output to print, with a heading each time the pod that printed them changes."""
    current: str | None = None
    for pod, line in lines:
        if pod != current:
            current = pod
            if pod:
                yield f"==> {pod} <=="
        yield line
