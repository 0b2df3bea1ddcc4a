"""Drops the traffic between this machine and one process-runtime cluster's pods (an nftables table).

The table matches the host-side veths of the cluster's pods by their name prefix
(:func:`~simcluster.runtimes.process.veth_prefix`), so pods started while it is in place are cut off
too, and pods of the same cluster still reach each other. It exists only while the pods hang; its
name carries the simcluster process's ID and start time, so a table that a killed simcluster left
behind is recognised and removed when the next one starts.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

from .process import run_tool

__all__ = ["PodBlackhole", "instance_id", "nft_available"]

log = logging.getLogger(__name__)

_TABLE = re.compile(r"^simcluster_(\d+)_(\d+)_\d+$")


def _start_time(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (field 22 of /proc/PID/stat); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
    return fields[19]


def instance_id(pid: int | None = None) -> str:
    """This simcluster among all on the machine, now and before: process ID and start time."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}_{_start_time(pid)}"


def nft_available() -> tuple[bool, str]:
    """Whether pod addresses can be dropped here, and why not."""
    if os.geteuid() != 0:
        return False, "dropping pod traffic needs root"
    if shutil.which("nft") is None:
        return False, "dropping pod traffic needs the nft binary (Debian package nftables)"
    return True, ""


def ruleset(table: str, prefix: str) -> str:
    """The table that drops what crosses between the pods whose veths start with ``prefix`` and the rest."""
    pods = f'"{prefix}*"'
    return (
        f"table inet {table} {{\n"
        "  chain input {\n"
        "    type filter hook input priority filter; policy accept;\n"
        f"    iifname {pods} drop\n"
        "  }\n"
        "  chain output {\n"
        "    type filter hook output priority filter; policy accept;\n"
        f"    oifname {pods} drop\n"
        "  }\n"
        "  chain forward {\n"
        "    type filter hook forward priority filter; policy accept;\n"
        f"    iifname {pods} oifname != {pods} drop\n"
        f"    oifname {pods} iifname != {pods} drop\n"
        "  }\n"
        "}\n"
    )


class PodBlackhole:
    """Puts the nftables table of one cluster in place (:meth:`hang`) and takes it away again."""

    def __init__(self, prefix: str, index: int) -> None:
        self.prefix = prefix
        self.table = f"simcluster_{instance_id()}_{index}"
        self.hung = False

    async def hang(self) -> None:
        # adding an empty table first makes the delete, and so the whole batch, work either way
        batch = f"add table inet {self.table}\ndelete table inet {self.table}\n"
        await run_tool("nft", "-f", "-", input=(batch + ruleset(self.table, self.prefix)).encode())
        self.hung = True
        log.info("pods behind %s* are cut off (nftables table inet %s)", self.prefix, self.table)

    async def restore(self) -> None:
        if not self.hung:
            return
        batch = f"add table inet {self.table}\ndelete table inet {self.table}\n"
        await run_tool("nft", "-f", "-", input=batch.encode())
        self.hung = False
        log.info("pods behind %s* are reachable again", self.prefix)

    @staticmethod
    async def remove_stale() -> list[str]:
        """Delete the tables of simclusters that no longer run; returns their names."""
        out = await run_tool("nft", "-j", "list", "tables")
        stale = []
        for item in json.loads(out or "{}").get("nftables", []):
            table = item.get("table") or {}
            match = _TABLE.match(str(table.get("name", "")))
            if table.get("family") != "inet" or match is None:
                continue
            pid, start = match.groups()
            if _start_time(int(pid)) != start:
                stale.append(table["name"])
        if stale:
            batch = "".join(f"delete table inet {name}\n" for name in stale)
            await run_tool("nft", "-f", "-", input=batch.encode())
            log.warning("removed nftables tables a stopped simcluster left behind: %s", ", ".join(stale))
        return stale
