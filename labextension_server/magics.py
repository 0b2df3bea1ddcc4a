"""IPython magics %gpus, %runs and %logs over the kernel-side client, and their registration."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, cast

from IPython.core import magic_arguments as _ma
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

from .client import Client, HybridhubError
from .display import GpusView, RunsView, gpus_view, log_lines, runs_view, visible

__all__ = ["HybridhubMagics", "load_ipython_extension"]

# IPython's argument decorators carry no types: these names give them theirs.
_Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
magic_arguments = cast(Callable[[], _Decorator], _ma.magic_arguments)
argument = cast(Callable[..., _Decorator], _ma.argument)
parse_argstring = cast(Callable[[Callable[..., Any], str], Any], _ma.parse_argstring)

# Kinds whose own object says more than their row: a sweep's trials, a training job's progress.
_DETAILED = ("Experiment", "TrainJob")


def _failed(exc: HybridhubError) -> UsageError:
    # IPython prints a UsageError as one line, with no traceback: the message is the whole story.
    return UsageError(f"hybridhub: {exc}")


@magics_class
class HybridhubMagics(Magics):
    """Cluster GPUs, the user's runs and their logs, from the hybridhub extension of this kernel's server."""

    def client(self) -> Client:
        """A client made from the environment each time, so that a renewed token is picked up."""
        try:
            return Client.from_env()
        except HybridhubError as exc:
            raise _failed(exc) from None

    @magic_arguments()
    @line_magic
    def gpus(self, line: str) -> GpusView:
        """Free and total GPUs per cluster and GPU product, each cluster's health, the expected wait of
        your queued runs, and this notebook's own GPUs."""
        parse_argstring(self.gpus, line)
        client = self.client()
        try:
            capacity = client.capacity()
        except HybridhubError as exc:
            raise _failed(exc) from None
        notes: list[str] = []
        # The runs only add the expected waits, and this pod's GPUs only a last section: without them
        # the view still answers what is free.
        rows: list[dict[str, Any]] = []
        try:
            rows = client.runs()
        except HybridhubError as exc:
            notes.append(f"expected waits unknown: {exc}")
        local: dict[str, Any] | None = None
        try:
            local = client.gpus()
        except HybridhubError as exc:
            notes.append(f"this notebook's GPUs unknown: {exc}")
        return gpus_view(capacity, rows, local, notes)

    @magic_arguments()
    @argument("--all", action="store_true", help="also show runs that ended a day or more ago")
    @line_magic
    def runs(self, line: str) -> RunsView:
        """Your runs in every cluster: kind, name, cluster, phase, GPUs, age and why; while queued, the
        place in the queue and the expected wait; a Katib sweep's trials; a TrainJob's progress."""
        args = parse_argstring(self.runs, line)
        client = self.client()
        try:
            rows = client.runs()
        except HybridhubError as exc:
            raise _failed(exc) from None
        details: dict[tuple[str, str], dict[str, Any]] = {}
        notes: list[str] = []
        for row in visible(rows, show_all=args.all):
            # A queued run has no object in any cluster yet.
            if row.get("kind") not in _DETAILED or row.get("queue") or not row.get("cluster"):
                continue
            key = (str(row["kind"]), str(row["name"]))
            try:
                details[key] = client.run(row)
            except HybridhubError as exc:
                notes.append(f"{key[0]}/{key[1]}: details unknown: {exc}")
        return runs_view(rows, details, show_all=args.all, notes=notes)

    @magic_arguments()
    @argument("run", help="the run's name, or KIND/NAME when names repeat across kinds")
    @argument("-f", "--follow", action="store_true", help="keep printing as the run prints, until it ends")
    @line_magic
    def logs(self, line: str) -> None:
        """A run's output, with a heading for each pod; with --follow, as it comes until the run ends."""
        args = parse_argstring(self.logs, line)
        stream = self.client().logs(args.run, follow=args.follow)
        try:
            for text in log_lines((entry.pod, str(entry)) for entry in stream):
                print(text, flush=True)
        except HybridhubError as exc:
            raise _failed(exc) from None
        except KeyboardInterrupt:
            # Interrupting the kernel is how a user stops following: not an error.
            print("(stopped following the log)", file=sys.stderr)
        finally:
            stream.close()


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext``'s hook: registers %gpus, %runs and %logs."""
    ipython.register_magics(HybridhubMagics)
