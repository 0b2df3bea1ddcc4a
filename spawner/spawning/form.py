"""The spawn options form: GPU count, GPU product and cluster, with live availability per cluster.

Pure (no I/O): ``render_form`` turns the service's ``api/capacity`` answer into the HTML JupyterHub
puts inside its own ``<form>`` (JupyterHub 5 inserts it verbatim, Bootstrap 5 classes), and
``options_from_form`` turns the submitted fields into user_options for ``spawner.spawning.options``. This form
replaces KubeSpawner's ``profile_list`` form for GPU choices: placement needs the count and product
(a profile would hard-code node selectors), and profile overrides are applied by KubeSpawner's
``load_user_options`` on top of what HybridSpawner sets for each attempt. See docs/spawn-form.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

__all__ = ["options_from_form", "render_form"]

ANY = "any"  # the product select's value for "any product" (user_options gpu_product None)
AUTO = "auto"  # the cluster select's value for "let placement choose" (on-prem first)

_DOWN = "down"
_HEALTH_BADGE = {"healthy": "text-bg-success", "degraded": "text-bg-warning", "down": "text-bg-danger"}
_ROLE = {"onprem": "on-prem", "cloud": "cloud"}

# what options_from_form accepts: the label value syntax GPU products have (nvidia.com/gpu.product),
# and the DNS labels cluster names are (spawner.core.clusters)
_LABEL_VALUE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_COUNT = re.compile(r"[0-9]{1,6}")


# --------------------------------------------------------------------------- capacity, read defensively


@dataclass(frozen=True)
class _Product:
    product: str
    total: int
    free: int
    largest_free: int
    new_node_gpus: int
    # the lag: GPUs that runs queued there ask for, and per size (1, 2, 4, 8 GPUs) the expected wait
    # of a run placed now in seconds (None: it never fits there)
    queued_gpus: int = 0
    waits: tuple[tuple[int, float | None], ...] = ()

    @property
    def largest(self) -> int:
        """The largest request of this product that can start now: on one node, or on a new one."""
        return max(self.largest_free, self.new_node_gpus)


@dataclass(frozen=True)
class _Cluster:
    name: str
    role: str
    health: str
    reason: str
    synced: bool
    products: tuple[_Product, ...]

    @property
    def usable(self) -> bool:
        """Placement skips DOWN clusters and those whose inventory has not synced yet."""
        return self.synced and self.health != _DOWN

    def limits(self, products: Iterable[str]) -> dict[str, int]:
        """Per product (and ``any``): the most GPUs one server can get here now."""
        by_product = {p.product: p.largest for p in self.products} if self.usable else {}
        limits = {ANY: max(by_product.values(), default=0)}
        limits.update((p, by_product.get(p, 0)) for p in products)
        return limits


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _waits(value: Any) -> tuple[tuple[int, float | None], ...]:
    """``expected_wait`` of a product: ``[{"gpus": N, "seconds": S or null}]``, sorted by size."""
    found: dict[int, float | None] = {}
    for w in value if isinstance(value, list) else ():
        if not isinstance(w, Mapping) or not _count(w.get("gpus")):
            continue
        seconds = w.get("seconds")
        if seconds is None:
            found[w["gpus"]] = None
        elif isinstance(seconds, int | float) and not isinstance(seconds, bool) and 0 <= seconds < 1e9:
            found[w["gpus"]] = float(seconds)
    return tuple(sorted(found.items()))


def _clusters(capacity: Mapping[str, Any]) -> list[_Cluster]:
    """The clusters of an ``api/capacity`` answer; malformed entries are skipped, not fatal."""
    raw = capacity.get("clusters")
    clusters = []
    for c in raw if isinstance(raw, list) else ():
        if not isinstance(c, Mapping) or not _text(c.get("name")):
            continue
        products = c.get("products")
        clusters.append(
            _Cluster(
                name=c["name"],
                role=_text(c.get("role")),
                health=_text(c.get("health")) or "unknown",
                reason=_text(c.get("reason")),
                synced=c.get("synced") is True,
                products=tuple(
                    _Product(
                        p["product"],
                        _count(p.get("total")),
                        _count(p.get("free")),
                        _count(p.get("largest_free")),
                        _count(p.get("new_node_gpus")),
                        _count(p.get("queued_gpus")),
                        _waits(p.get("expected_wait")),
                    )
                    for p in (products if isinstance(products, list) else ())
                    if isinstance(p, Mapping) and _text(p.get("product"))
                ),
            )
        )
    return clusters


# --------------------------------------------------------------------------- rendering


def render_form(
    capacity: Mapping[str, Any] | None,
    *,
    products: Sequence[str],
    max_gpus: int,
    allowed_clusters: Sequence[str] | None,
    previous: Mapping[str, Any] | None = None,
) -> str:
    """The spawn form's HTML. ``capacity``: the service's ``api/capacity`` JSON (None: it did not
    answer); ``products``: the GPU products on offer (empty: those the clusters report);
    ``allowed_clusters``: the clusters this user may use (None: all); ``previous``: the last
    user_options, pre-selected. GPU counts no usable cluster can start now for the selected product
    (and cluster) are ``disabled``; a small script updates that when the selection changes."""
    max_gpus = max(0, max_gpus)
    clusters = _clusters(capacity) if capacity is not None else []
    if allowed_clusters is not None:
        clusters = [c for c in clusters if c.name in allowed_clusters]
    offered = list(dict.fromkeys(products)) or sorted({p.product for c in clusters for p in c.products})

    names = [c.name for c in clusters] if allowed_clusters is None else list(dict.fromkeys(allowed_clusters))
    prev = dict(previous or {})
    prev_gpus = _previous_count(prev.get("gpus"), max_gpus)
    prev_product = _text(prev.get("gpu_product"))
    if prev_product not in offered:
        prev_product = ANY
    prev_cluster = _text(prev.get("cluster")) or AUTO
    if prev_cluster != AUTO and prev_cluster not in names and capacity is None and allowed_clusters is None:
        names.append(prev_cluster)  # no list to check it against: it was valid last time
    if prev_cluster not in names:
        prev_cluster = AUTO

    # limits[cluster or AUTO][product or ANY]: the most GPUs one server can get now (None: not known)
    limits: dict[str, dict[str, int]] | None = None
    if capacity is not None:
        by_cluster = {c.name: c.limits(offered) for c in clusters}
        limits = {name: {p: min(n, max_gpus) for p, n in lim.items()} for name, lim in by_cluster.items()}
        limits[AUTO] = {p: max((lim[p] for lim in limits.values()), default=0) for p in [ANY, *offered]}
        for name in names:  # allowed, but missing from the answer: nothing known to be free there
            limits.setdefault(name, dict.fromkeys([ANY, *offered], 0))
    current = None if limits is None else limits[prev_cluster][prev_product]

    out = ['<div id="hybridhub-spawn-form">']

    out.append('<div class="mb-3">')
    out.append('<label for="hybridhub-gpus" class="form-label">GPUs</label>')
    out.append('<select name="gpus" id="hybridhub-gpus" class="form-select">')
    for n in range(max_gpus + 1):
        label = "0 (CPU only)" if n == 0 else f"{n} GPU" if n == 1 else f"{n} GPUs"
        # the selected count is never disabled: a disabled option is not submitted at all
        disabled = _flag(current is not None and n > current and n != prev_gpus, "disabled")
        out.append(f'<option value="{n}"{_flag(n == prev_gpus, "selected")}{disabled}>{label}</option>')
    out.append("</select>")
    if limits is not None:
        out.append(
            '<div class="form-text">Greyed-out counts: no cluster (or not the chosen one) can start '
            "that many GPUs of the chosen product right now; how long runs wait for them is under "
            "Runs queued below.</div>"
        )
    out.append("</div>")

    out.append('<div class="mb-3">')
    out.append('<label for="hybridhub-gpu-product" class="form-label">GPU product</label>')
    out.append('<select name="gpu_product" id="hybridhub-gpu-product" class="form-select">')
    for value in [ANY, *offered]:
        data = "" if limits is None else f' data-max-gpus="{limits[AUTO][value]}"'
        label = "any" if value == ANY else value
        flag = _flag(value == prev_product, "selected")
        out.append(f'<option value="{escape(value)}"{data}{flag}>{escape(label)}</option>')
    out.append("</select>")
    out.append("</div>")

    out.append('<div class="mb-3">')
    out.append('<label for="hybridhub-cluster" class="form-label">Cluster</label>')
    out.append('<select name="cluster" id="hybridhub-cluster" class="form-select">')
    auto = _flag(prev_cluster == AUTO, "selected")
    out.append(f'<option value="{AUTO}"{auto}>auto (on-prem first)</option>')
    known = {c.name: c for c in clusters}
    for name in names:
        data = "" if limits is None else f' data-max-gpus="{escape(json.dumps(limits[name]))}"'
        c = known.get(name)
        label = name if c is None else f"{name} ({_ROLE.get(c.role, c.role or 'cluster')}, {_state(c)})"
        flag = _flag(name == prev_cluster, "selected")
        out.append(f'<option value="{escape(name)}"{data}{flag}>{escape(label)}</option>')
    out.append("</select>")
    out.append("</div>")

    if limits is not None and max_gpus > 0:
        # the lag, per product and count: what a server would wait for in each cluster
        table = {
            value: {str(n): _wait_line(clusters, limits, value, n) for n in range(1, max_gpus + 1)}
            for value in [ANY, *offered]
        }
        shown = table[prev_product].get(str(prev_gpus), "")
        out.append(
            f'<p id="hybridhub-wait" class="form-text" role="status" aria-live="polite" '
            f'data-waits="{escape(json.dumps(table))}">{escape(shown)}</p>'
        )

    if capacity is None:
        out.append(
            '<p class="alert alert-warning" role="status">Live availability unavailable: the hybridhub '
            "service did not answer. You can still choose; where your server runs is decided when you "
            "press Start.</p>"
        )
    else:
        out.append(_availability(clusters, offered if products else None))
    out.append("</div>")
    if limits is not None:
        out.append(_SCRIPT)
    return "\n".join(out) + "\n"


def _flag(on: bool, name: str) -> str:
    return f" {name}" if on else ""


def _previous_count(value: Any, max_gpus: int) -> int:
    if isinstance(value, str) and _COUNT.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= max_gpus:
        return value
    return 0


def _state(c: _Cluster) -> str:
    return c.health if c.synced else "not synced yet"


def _wait_line(
    clusters: Sequence[_Cluster], limits: Mapping[str, Mapping[str, int]], product: str, gpus: int
) -> str:
    """The wait line, "For 4 x A100: onprem: about 20 min; eks: now." (with a multiplication sign), for
    the clusters shown; empty without any."""
    if not clusters:
        return ""
    what = f"{gpus} GPU" if gpus == 1 else f"{gpus} GPUs"
    if product != ANY:
        what = f"{gpus} \u00d7 {product}"
    waits = "; ".join(f"{c.name}: {_wait(c, product, gpus, limits[c.name][product])}" for c in clusters)
    return f"For {what}: {waits}."


def _wait(c: _Cluster, product: str, gpus: int, limit: int) -> str:
    """How long ``gpus`` GPUs of ``product`` would wait in ``c``: "now" where they fit now (``limit``,
    what placement may start there), else the service's expected wait of a run of that size (the
    next size it reports, 1, 2, 4 or 8, behind the runs queued there), "never fits" where no node or
    pool can ever hold them, "none here" where the cluster has no such GPUs, "no estimate" without
    a figure."""
    if not c.synced:
        return "not synced yet"
    if c.health == _DOWN:
        return "down"
    if gpus <= limit:
        return "now"
    seconds: list[float] = []
    never = False
    mine = [p for p in c.products if product in (ANY, p.product)]
    if not mine:
        return "none here"
    for p in mine:
        found = next((wait for size, wait in p.waits if size >= gpus), 0.0)
        if found is None:
            never = True
        elif found > 0:
            seconds.append(found)
    if seconds:
        return f"about {_about(min(seconds))}"
    return "never fits" if never else "not now, no estimate"


def _about(seconds: float) -> str:
    """A wait in words: under a minute, 20 min, 2 h 5 min, 3 days."""
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days = round(hours / 24)
    return "1 day" if days == 1 else f"{days} days"


def _lag(p: _Product) -> str:
    """The availability table's "Runs queued" cell: queued GPUs and the waits of runs placed now ("" for
    none)."""
    later = [
        f"{size}: never fits" if wait is None else f"{size}: about {_about(wait)}"
        for size, wait in p.waits
        if wait is None or wait > 0
    ]
    parts = [f"{p.queued_gpus} GPU" + ("s" if p.queued_gpus > 1 else "")] if p.queued_gpus else []
    if later:
        parts.append("a run of " + ", ".join(later))
    return "; ".join(parts)


def _availability(clusters: Sequence[_Cluster], offered: Sequence[str] | None) -> str:
    """One small table per cluster: its health, and per product free / total and elastic growth."""
    out = ['<div class="mb-3" id="hybridhub-availability">', '<h2 class="h5">Available now</h2>']
    if not clusters:
        out.append('<p class="text-body-secondary">No cluster reported any capacity.</p>')
    for c in clusters:
        badge = _HEALTH_BADGE.get(c.health, "text-bg-secondary") if c.synced else "text-bg-secondary"
        role = _ROLE.get(c.role, c.role)
        out.append(f'<table class="table table-sm caption-top" data-cluster="{escape(c.name)}">')
        caption = f"<strong>{escape(c.name)}</strong>"
        if role:
            caption += f" ({escape(role)})"
        caption += f' <span class="badge {badge}">{escape(_state(c))}</span>'
        if c.reason:
            caption += f' <small class="text-body-secondary">{escape(c.reason)}</small>'
        out.append(f"<caption>{caption}</caption>")
        out.append(
            '<thead><tr><th scope="col">GPU product</th><th scope="col">Free / total</th>'
            '<th scope="col">Most on one node</th><th scope="col">Elastic pool</th>'
            '<th scope="col">Runs queued</th></tr></thead>'
        )
        out.append("<tbody>")
        rows = [p for p in c.products if offered is None or p.product in offered]
        if not rows:
            out.append('<tr><td colspan="5" class="text-body-secondary">no GPUs</td></tr>')
        for p in rows:
            grow = f"can add nodes ({p.new_node_gpus} GPUs each)" if p.new_node_gpus else "&mdash;"
            out.append(
                f"<tr><td>{escape(p.product)}</td><td>{p.free} / {p.total}</td>"
                f"<td>{p.largest_free}</td><td>{grow}</td><td>{escape(_lag(p)) or '&mdash;'}</td></tr>"
            )
        out.append("</tbody>")
        out.append("</table>")
    out.append("</div>")
    return "\n".join(out)


# Progressive enhancement only (the server validates every choice): when the product or cluster
# changes, disable the GPU counts above what the data-max-gpus attributes say can start now.
_SCRIPT = """<script>
(function () {
  var gpus = document.getElementById("hybridhub-gpus");
  var product = document.getElementById("hybridhub-gpu-product");
  var cluster = document.getElementById("hybridhub-cluster");
  if (!gpus || !product || !cluster) { return; }
  function limit() {
    var p = product.options[product.selectedIndex];
    var c = cluster.options[cluster.selectedIndex];
    if (c && c.value !== "auto") {
      var byProduct = JSON.parse(c.getAttribute("data-max-gpus") || "{}");
      return typeof byProduct[p.value] === "number" ? byProduct[p.value] : 0;
    }
    return parseInt(p.getAttribute("data-max-gpus") || "0", 10);
  }
  var line = document.getElementById("hybridhub-wait");
  function wait() {
    if (!line) { return; }
    var byCount = JSON.parse(line.getAttribute("data-waits") || "{}")[product.value] || {};
    line.textContent = byCount[gpus.value] || "";
  }
  function update() {
    var n = limit(), best = 0;
    for (var i = 0; i < gpus.options.length; i++) {
      var o = gpus.options[i];
      o.disabled = parseInt(o.value, 10) > n;
      if (!o.disabled) { best = i; }
    }
    if (gpus.options[gpus.selectedIndex].disabled) { gpus.selectedIndex = best; }
    wait();
  }
  gpus.addEventListener("change", wait);
  product.addEventListener("change", update);
  cluster.addEventListener("change", update);
})();
</script>"""


# --------------------------------------------------------------------------- the submitted form


def options_from_form(formdata: Mapping[str, list[str]]) -> dict[str, Any]:
    """JupyterHub's form fields (lists of strings) -> ``{"gpus", "gpu_product", "cluster"}``.

    Missing fields get the defaults (0 GPUs, any product, auto); other fields are ignored. Only the
    shape is checked here (a count, a product name, a cluster name): ranges, products on offer and
    the clusters a user may use are ``spawner.spawning.options.parse_options``'s. Raises ValueError with a
    sentence users read."""
    gpus_text = _field(formdata, "gpus", "GPU count")
    gpus = 0
    if gpus_text is not None:
        if not _COUNT.fullmatch(gpus_text):
            shown = _show(gpus_text)
            raise ValueError(f"The GPU count must be a whole number such as 0, 1 or 2, not {shown}.")
        gpus = int(gpus_text)

    product = _field(formdata, "gpu_product", "GPU product")
    if product in (None, "", ANY):
        product = None
    elif not _LABEL_VALUE.fullmatch(product):
        raise ValueError(f"The GPU product must be a product name such as NVIDIA-L40S, not {_show(product)}.")

    cluster = _field(formdata, "cluster", "cluster") or AUTO
    if cluster != AUTO and not _DNS_LABEL.fullmatch(cluster):
        raise ValueError(f"The cluster must be a cluster name or 'auto', not {_show(cluster)}.")
    return {"gpus": gpus, "gpu_product": product, "cluster": cluster}


def _field(formdata: Mapping[str, list[str]], key: str, what: str) -> str | None:
    values = formdata.get(key)
    if values is None or (isinstance(values, list | tuple) and not values):
        return None
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"The form sent a {what} that is not text.")
    if len(values) > 1:
        raise ValueError(f"The form sent {len(values)} values for the {what}; choose one.")
    return values[0].strip()


def _show(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")
