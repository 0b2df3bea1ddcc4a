"""The spawn form: fields parsed strictly, availability shown and escaped, impossible counts greyed out."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

import pytest

from spawner.spawning.form import options_from_form, render_form

A100 = "NVIDIA-A100-SXM4-80GB"
L40S = "NVIDIA-L40S"
HOSTILE = "<script>x</script>"
X = "\u00d7"  # the multiplication sign of "4 x A100"


def product(name: str, total: int, free: int, largest: int, new: int = 0) -> dict[str, Any]:
    return {"product": name, "total": total, "free": free, "largest_free": largest, "new_node_gpus": new}


def cluster(name: str, role: str, health: str, *products: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "role": role,
        "health": health,
        "reason": extra.get("reason", ""),
        "synced": extra.get("synced", True),
        "products": list(products),
        "nodes": [],
    }


# on-prem: at most 2 A100 on one node, 1 L40S; eks: elastic L40S nodes of 4; lab: down, 8 A100 free
CAPACITY = {
    "clusters": [
        cluster("onprem", "onprem", "healthy", product(A100, 16, 3, 2), product(L40S, 4, 1, 1)),
        cluster("eks", "cloud", "degraded", product(L40S, 0, 0, 0, new=4), reason="slow API (1.4s)"),
        cluster("lab", "onprem", "down", product(A100, 8, 8, 8), reason="API unreachable"),
    ]
}


# --------------------------------------------------------------------------- a tiny form reader


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Form(HTMLParser):
    """Checks tags balance and collects each select's options (attributes decoded) and all text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.selects: dict[str, list[dict[str, Any]]] = {}
        self.tags: list[str] = []
        self.text: list[str] = []
        self._select: str | None = None
        self._option: dict[str, Any] | None = None
        self.feed(html)
        self.close()
        assert not self.stack, f"unclosed tags: {self.stack}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in VOID:
            self.stack.append(tag)
        a = dict(attrs)
        if tag == "select":
            self._select = a["name"]
            self.selects[self._select or ""] = []
        elif tag == "option":
            assert self._select is not None, "an option outside a select"
            self._option = {**a, "label": ""}
            self.selects[self._select].append(self._option)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()
        if tag == "select":
            self._select = None
        elif tag == "option":
            self._option = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._option is not None:
            self._option["label"] += data

    def values(self, select: str) -> list[str]:
        return [o["value"] for o in self.selects[select]]

    def disabled(self, select: str = "gpus") -> list[str]:
        return [o["value"] for o in self.selects[select] if "disabled" in o]

    def selected(self, select: str) -> list[str]:
        return [o["value"] for o in self.selects[select] if "selected" in o]

    def option(self, select: str, value: str) -> dict[str, Any]:
        return next(o for o in self.selects[select] if o["value"] == value)


def render(capacity: Any = CAPACITY, **kw: Any) -> tuple[str, Form]:
    kw = {"products": [A100, L40S], "max_gpus": 4, "allowed_clusters": None, **kw}
    html = render_form(capacity, **kw)
    return html, Form(html)


# --------------------------------------------------------------------------- options_from_form


@pytest.mark.parametrize(
    ("formdata", "expected"),
    [
        ({}, {"gpus": 0, "gpu_product": None, "cluster": "auto"}),
        (
            {"gpus": ["2"], "gpu_product": [A100], "cluster": ["onprem"]},
            {"gpus": 2, "gpu_product": A100, "cluster": "onprem"},
        ),
        (
            {"gpus": ["1"], "gpu_product": ["any"], "cluster": ["auto"]},
            {"gpus": 1, "gpu_product": None, "cluster": "auto"},
        ),
        (
            {"gpus": [" 3 "], "gpu_product": [""], "cluster": [""]},
            {"gpus": 3, "gpu_product": None, "cluster": "auto"},
        ),
        ({"gpus": ["0"], "gpu_product": [L40S]}, {"gpus": 0, "gpu_product": L40S, "cluster": "auto"}),
        ({"gpus": [], "cluster": ["eks-2"]}, {"gpus": 0, "gpu_product": None, "cluster": "eks-2"}),
        (
            {"gpus": ["1"], "_xsrf": ["abc"], "profile": ["x"]},
            {"gpus": 1, "gpu_product": None, "cluster": "auto"},
        ),
        ({"gpus": ["9999"]}, {"gpus": 9999, "gpu_product": None, "cluster": "auto"}),  # range: parse_options
    ],
)
def test_good_form(formdata: dict[str, list[str]], expected: dict[str, Any]) -> None:
    assert options_from_form(formdata) == expected


@pytest.mark.parametrize(
    ("formdata", "message"),
    [
        ({"gpus": ["two"]}, "GPU count must be a whole number such as 0, 1 or 2, not 'two'"),
        ({"gpus": ["-1"]}, "GPU count must be a whole number"),
        ({"gpus": ["1.5"]}, "GPU count must be a whole number"),
        ({"gpus": [""]}, "GPU count must be a whole number"),
        ({"gpus": ["\uff13"]}, "GPU count must be a whole number"),  # a full-width digit
        ({"gpus": ["9" * 5000]}, "not '99999999"),  # shown shortened, no int() digit-limit error
        ({"gpus": ["1", "2"]}, "The form sent 2 values for the GPU count; choose one."),
        ({"gpus": "2"}, "GPU count that is not text"),  # a bare string, not a list
        ({"gpus": [b"2"]}, "GPU count that is not text"),
        ({"gpu_product": [HOSTILE]}, "GPU product must be a product name such as NVIDIA-L40S, not '<script>"),
        ({"gpu_product": ["NVIDIA A100"]}, "GPU product must be a product name"),
        ({"gpu_product": ["a" * 64]}, "GPU product must be a product name"),
        ({"gpu_product": [A100, L40S]}, "2 values for the GPU product"),
        ({"cluster": ["On-Prem"]}, "The cluster must be a cluster name or 'auto', not 'On-Prem'."),
        ({"cluster": ["eks;rm"]}, "cluster must be a cluster name"),
        ({"cluster": ["auto", "eks"]}, "2 values for the cluster"),
    ],
)
def test_bad_form(formdata: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        options_from_form(formdata)
    assert message in str(info.value)


def test_long_garbage_is_shortened() -> None:
    with pytest.raises(ValueError) as info:
        options_from_form({"gpus": ["9" * 5000]})
    assert len(str(info.value)) < 120


# --------------------------------------------------------------------------- render_form


def test_fields_and_defaults() -> None:
    html, form = render()
    assert form.values("gpus") == ["0", "1", "2", "3", "4"]
    assert form.option("gpus", "0")["label"] == "0 (CPU only)"
    assert form.values("gpu_product") == ["any", A100, L40S]
    assert form.values("cluster") == ["auto", "onprem", "eks", "lab"]
    assert form.option("cluster", "auto")["label"] == "auto (on-prem first)"
    assert form.option("cluster", "eks")["label"] == "eks (cloud, degraded)"
    assert form.selected("gpus") == ["0"]
    assert form.selected("gpu_product") == ["any"]
    assert form.selected("cluster") == ["auto"]
    assert form.tags.count("script") == 1
    assert "form-select" in html and "form-label" in html  # Bootstrap 5, as JupyterHub 5's pages


def test_impossible_counts_are_disabled() -> None:
    _, form = render()
    # any product: onprem 2 on one node, eks 4 on a new node, lab is down -> 4 (all) possible
    assert form.disabled() == []
    # per product, over clusters not down: A100 2 (onprem; lab's 8 do not count), L40S 4 (eks grows)
    assert form.option("gpu_product", "any")["data-max-gpus"] == "4"
    assert form.option("gpu_product", A100)["data-max-gpus"] == "2"
    assert form.option("gpu_product", L40S)["data-max-gpus"] == "4"
    assert json.loads(form.option("cluster", "onprem")["data-max-gpus"]) == {"any": 2, A100: 2, L40S: 1}
    assert json.loads(form.option("cluster", "lab")["data-max-gpus"]) == {"any": 0, A100: 0, L40S: 0}
    _, form = render(previous={"gpus": 1, "gpu_product": A100})
    assert form.disabled() == ["3", "4"]
    _, form = render(previous={"gpus": 1, "gpu_product": L40S, "cluster": "onprem"})
    assert form.disabled() == ["2", "3", "4"]
    _, form = render(previous={"gpus": 0, "cluster": "lab"})  # down: CPU only
    assert form.disabled() == ["1", "2", "3", "4"]


def test_limits_are_capped_and_unsynced_clusters_do_not_count() -> None:
    capacity = {"clusters": [cluster("big", "onprem", "healthy", product(A100, 64, 64, 16))]}
    _, form = render(capacity, max_gpus=8)
    assert form.option("gpu_product", A100)["data-max-gpus"] == "8"
    capacity = {"clusters": [cluster("new", "onprem", "unknown", product(A100, 8, 8, 8), synced=False)]}
    html, form = render(capacity, previous={"gpu_product": A100})
    assert form.disabled() == ["1", "2", "3", "4"]
    assert "not synced yet" in html


def test_the_selected_count_is_never_disabled() -> None:
    # a disabled option is not submitted: the previous choice stays selectable, the server explains
    _, form = render(previous={"gpus": 3, "gpu_product": A100})
    assert form.selected("gpus") == ["3"]
    assert form.disabled() == ["4"]


def test_products_from_capacity_when_none_configured() -> None:
    _, form = render(products=[])
    assert form.values("gpu_product") == ["any", A100, L40S]
    _, form = render(products=[L40S])  # configured: only those, in every table too
    assert form.values("gpu_product") == ["any", L40S]
    assert A100 not in "".join(form.text)


def test_hostile_names_are_escaped() -> None:
    capacity = {
        "clusters": [
            cluster(
                "onprem", "onprem", "degraded", product(HOSTILE, 4, 4, 4), reason='<img src=x onerror="y">'
            ),
        ]
    }
    html, form = render(capacity, products=[])
    assert HOSTILE not in html and "<img" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
    assert form.tags.count("script") == 1  # ours only
    assert "img" not in form.tags
    assert form.values("gpu_product") == ["any", HOSTILE]  # the browser shows (and sends) it as text
    assert form.option("gpu_product", HOSTILE)["label"] == HOSTILE
    assert json.loads(form.option("cluster", "onprem")["data-max-gpus"]) == {"any": 4, HOSTILE: 4}
    assert '<img src=x onerror="y">' in "".join(form.text)


def test_clusters_filtered_by_allowed_clusters() -> None:
    html, form = render(allowed_clusters=["eks"])
    assert form.values("cluster") == ["auto", "eks"]
    assert 'data-cluster="onprem"' not in html and 'data-cluster="eks"' in html
    # auto counts only the clusters this user may use: eks has L40S (new nodes of 4), no A100
    assert form.option("gpu_product", A100)["data-max-gpus"] == "0"
    assert form.option("gpu_product", L40S)["data-max-gpus"] == "4"
    _, form = render(allowed_clusters=[])
    assert form.values("cluster") == ["auto"]
    _, form = render(allowed_clusters=["eks"], previous={"cluster": "onprem"})  # no longer allowed
    assert form.selected("cluster") == ["auto"]


def test_availability_tables() -> None:
    html, form = render()
    text = " ".join(" ".join(form.text).split())
    assert form.tags.count("table") == 3
    assert "3 / 16" in text and "0 / 0" in text
    assert "can add nodes (4 GPUs each)" in text
    assert "slow API (1.4s)" in text and "API unreachable" in text
    assert 'class="badge text-bg-danger">down<' in html
    assert "live availability unavailable" not in html.lower()


def test_no_capacity_renders_without_availability() -> None:
    html, form = render(None, products=[], allowed_clusters=None, previous={"gpus": 2, "cluster": "eks"})
    assert "live availability unavailable" in html.lower()
    assert "table" not in form.tags and "script" not in form.tags
    assert form.disabled() == []
    assert "data-max-gpus" not in html
    assert form.values("gpu_product") == ["any"]
    assert form.values("cluster") == ["auto", "eks"]  # the previous cluster: nothing to check it against
    assert form.selected("gpus") == ["2"] and form.selected("cluster") == ["eks"]
    _, form = render(None, allowed_clusters=["onprem", "eks"])
    assert form.values("cluster") == ["auto", "onprem", "eks"]
    assert form.values("gpu_product") == ["any", A100, L40S]


def test_previous_choices_are_preselected() -> None:
    _, form = render(previous={"gpus": "2", "gpu_product": A100, "cluster": "onprem"})
    assert form.selected("gpus") == ["2"]
    assert form.selected("gpu_product") == [A100]
    assert form.selected("cluster") == ["onprem"]
    for garbage in ({"gpus": 99, "gpu_product": "H100", "cluster": "gone"}, {"gpus": True, "gpu_product": 3}):
        _, form = render(previous=garbage)
        assert (form.selected("gpus"), form.selected("gpu_product"), form.selected("cluster")) == (
            ["0"],
            ["any"],
            ["auto"],
        )


@pytest.mark.parametrize(
    "capacity",
    [{}, {"clusters": None}, {"clusters": [None, {"name": 3}, {"name": "x", "products": [{"product": 1}]}]}],
)
def test_malformed_capacity_does_not_break_the_form(capacity: Any) -> None:
    _, form = render(capacity)
    assert form.values("gpus") == ["0", "1", "2", "3", "4"]


def test_the_form_round_trips() -> None:
    """What the form submits (each select's selected option) parses back into the previous choices."""
    previous = {"gpus": 2, "gpu_product": A100, "cluster": "onprem"}
    _, form = render(previous=previous)
    submitted = {name: form.selected(name) for name in ("gpus", "gpu_product", "cluster")}
    assert options_from_form(submitted) == previous


# --------------------------------------------------------------------------- the lag


def lagging(**extra: Any) -> dict[str, Any]:
    """On-prem's A100s held by runs (4 GPUs queued; 4 wait 20 min, 8 never fit), EKS adds L40S nodes."""
    a100 = {
        **product(A100, 16, 3, 2),
        "queued_gpus": 4,
        "expected_wait": [
            {"gpus": 1, "seconds": 0},
            {"gpus": 2, "seconds": 0},
            {"gpus": 4, "seconds": 1200.4},
            {"gpus": 8, "seconds": None},
        ],
    }
    return {
        "clusters": [
            cluster("onprem", "onprem", "healthy", a100, product(L40S, 4, 1, 1)),
            cluster("eks", "cloud", "healthy", product(L40S, 0, 0, 0, new=4)),
            cluster("lab", "onprem", "down", product(A100, 8, 8, 8)),
            *extra.get("more", []),
        ]
    }


def wait_line(html: str) -> tuple[str, dict[str, dict[str, str]]]:
    """The wait line's text and its table (product -> count -> text) from the rendered form."""

    class Line(HTMLParser):
        text, table, inside = "", {}, False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if a.get("id") == "hybridhub-wait":
                self.inside, self.table = True, json.loads(a["data-waits"] or "{}")

        def handle_endtag(self, tag: str) -> None:
            self.inside = False

        def handle_data(self, data: str) -> None:
            if self.inside:
                self.text += data

    line = Line(convert_charrefs=True)
    line.feed(html)
    return line.text, line.table


def test_the_wait_line_says_where_a_server_starts_now_and_how_long_runs_wait_elsewhere() -> None:
    html, _ = render(lagging(), max_gpus=8, previous={"gpus": 4, "gpu_product": A100})
    text, table = wait_line(html)
    # the sentence: on-prem has no room for 4 now (at most 2 on one node), runs wait 20 min
    assert text == f"For 4 {X} {A100}: onprem: about 20 min; eks: none here; lab: down."
    assert table[A100]["4"] == text
    assert table[A100]["2"] == f"For 2 {X} {A100}: onprem: now; eks: none here; lab: down."
    assert table[A100]["3"] == table[A100]["4"].replace(f"4 {X}", f"3 {X}")  # the next size reported: 4
    assert table[A100]["8"] == f"For 8 {X} {A100}: onprem: never fits; eks: none here; lab: down."
    assert table[L40S]["4"] == f"For 4 {X} {L40S}: onprem: not now, no estimate; eks: now; lab: down."
    # any product: the soonest of the cluster's products; a count on one GPU reads as such
    assert table["any"]["4"] == "For 4 GPUs: onprem: about 20 min; eks: now; lab: down."
    assert table["any"]["1"] == "For 1 GPU: onprem: now; eks: now; lab: down."
    assert set(table) == {"any", A100, L40S} and list(table["any"]) == [str(n) for n in range(1, 9)]
    # CPU only: nothing to wait for, the line is empty until a count is chosen (the script fills it)
    html, _ = render(lagging(), max_gpus=8)
    assert wait_line(html)[0] == ""
    # no GPUs on offer, or no answer from the service: no line at all
    assert 'id="hybridhub-wait"' not in render(lagging(), max_gpus=0)[0]
    assert 'id="hybridhub-wait"' not in render(None)[0]


def test_the_wait_line_follows_allowed_clusters_and_unsynced_ones() -> None:
    new = cluster("new", "onprem", "unknown", product(A100, 8, 8, 8), synced=False)
    html, _ = render(lagging(more=[new]), allowed_clusters=["onprem", "new"], previous={"gpus": 4})
    assert wait_line(html)[0] == "For 4 GPUs: onprem: about 20 min; new: not synced yet."
    # no cluster this user may use: nothing to say for any choice
    html, _ = render(lagging(), allowed_clusters=[], previous={"gpus": 1})
    text, table = wait_line(html)
    assert text == "" and {line for counts in table.values() for line in counts.values()} == {""}


def test_the_lag_of_hostile_or_malformed_answers_is_escaped_or_skipped() -> None:
    hostile = {
        **product(HOSTILE, 4, 0, 0),
        "queued_gpus": "4",  # not a count: no queue shown
        "expected_wait": [
            None,
            {"gpus": True, "seconds": 5},
            {"gpus": 1, "seconds": "soon"},
            {"gpus": 2, "seconds": -1},
            {"gpus": 4, "seconds": 7200},
        ],
    }
    capacity = {"clusters": [cluster("onprem", "onprem", "healthy", hostile)]}
    html, form = render(capacity, products=[], previous={"gpus": 1, "gpu_product": HOSTILE})
    assert HOSTILE not in html and form.tags.count("script") == 1
    text, table = wait_line(html)
    # only the size of 4 was readable; it is the next size up from 1
    assert text == f"For 1 {X} {HOSTILE}: onprem: about 2 h." == table[HOSTILE]["1"]
    assert "a run of 4: about 2 h" in " ".join(form.text) and "GPUs;" not in " ".join(form.text)


def test_the_availability_tables_show_queued_gpus_and_the_waits_of_runs() -> None:
    _, form = render(lagging())
    text = " ".join(" ".join(form.text).split())
    assert "Runs queued" in text
    assert "4 GPUs; a run of 4: about 20 min, 8: never fits" in text
    assert text.count("\u2014") >= 3  # the other rows: nothing queued, nothing to wait for


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "under a minute"),
        (29, "under a minute"),
        (31, "1 min"),
        (1199, "20 min"),
        (3600, "1 h"),
        (3660, "1 h 1 min"),
        (86399, "1 day"),
        (86400 * 1.4, "1 day"),
        (86400 * 3, "3 days"),
    ],
)
def test_waits_in_words(seconds: float, words: str) -> None:
    capacity = {
        "clusters": [
            cluster(
                "c",
                "onprem",
                "healthy",
                {**product(A100, 1, 0, 0), "expected_wait": [{"gpus": 1, "seconds": seconds}]},
            )
        ]
    }
    text = wait_line(render(capacity, previous={"gpus": 1})[0])[0]
    expected = "now" if seconds == 0 else f"about {words}"
    assert text == f"For 1 GPU: c: {'not now, no estimate' if seconds == 0 else expected}."
