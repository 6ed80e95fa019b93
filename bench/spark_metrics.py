"""Pure helpers of the Spark benchmark: the peak RSS of a process tree (the Spark driver JVM is a child of the
Python process, its Python workers are children of the JVM) and per-stage figures from a Spark event log."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path


def process_tree(root: int, parents: Mapping[int, int]) -> set[int]:
    """`root` and every process below it, given each process's parent (pid -> ppid)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in tree:
                tree.add(child)
                todo.append(child)
    return tree


def _parents() -> dict[int, int]:
    parents = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:  # gone since the listing
            continue
        # the command name (field 2) may hold spaces and parentheses: the ppid is the 2nd field after the last ')'
        parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    return parents


def tree_rss_kb(root: int) -> int:
    """The resident memory of `root` and all its descendants now, in kB (sum of their VmRSS)."""
    total = 0
    for pid in process_tree(root, _parents()):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def stage_figures(events: Iterable[Mapping]) -> list[dict]:
    """Per completed stage of a Spark event log (its parsed JSON lines): tasks, input, shuffle read/write and
    spill bytes, and task durations (median, max, and their ratio: the skew), in stage order."""
    tasks: dict[int, list[Mapping]] = {}
    names: dict[int, str] = {}
    for ev in events:
        kind = ev.get("Event")
        if kind == "SparkListenerTaskEnd" and ev.get("Task Metrics") is not None:
            tasks.setdefault(ev["Stage ID"], []).append(ev)
        elif kind == "SparkListenerStageCompleted":
            info = ev["Stage Info"]
            names[info["Stage ID"]] = info.get("Stage Name", "")
    figures = []
    for stage in sorted(tasks):
        ends = tasks[stage]
        metrics = [t["Task Metrics"] for t in ends]
        durations = [(t["Task Info"]["Finish Time"] - t["Task Info"]["Launch Time"]) / 1000 for t in ends]
        shuffle_read = [
            m.get("Shuffle Read Metrics", {}).get("Local Bytes Read", 0)
            + m.get("Shuffle Read Metrics", {}).get("Remote Bytes Read", 0)
            for m in metrics
        ]
        median = statistics.median(durations)
        figures.append(
            {
                "stage": stage,
                "name": names.get(stage, ""),
                "tasks": len(ends),
                "input_bytes": sum(m.get("Input Metrics", {}).get("Bytes Read", 0) for m in metrics),
                "shuffle_read_bytes": sum(shuffle_read),
                "shuffle_read_max_task_bytes": max(shuffle_read),
                "shuffle_write_bytes": sum(
                    m.get("Shuffle Write Metrics", {}).get("Shuffle Bytes Written", 0) for m in metrics
                ),
                "spill_bytes": sum(m.get("Disk Bytes Spilled", 0) for m in metrics),
                "task_seconds_sum": round(sum(durations), 3),
                "task_seconds_median": round(median, 3),
                "task_seconds_max": round(max(durations), 3),
                "skew": round(max(durations) / median, 2) if median > 0 else None,
            }
        )
    return figures


def read_event_log(path: Path) -> list[dict]:
    """The events of an uncompressed Spark event log: one file of JSON lines, or a rolling log's folder
    (`eventlog_v2_<app>/events_<n>_<app>`, Spark 4's default) read in the order of its files."""
    files = [path]
    if path.is_dir():
        files = sorted(path.glob("events_*"), key=lambda p: int(p.name.split("_")[1]))
    events = []
    for file in files:
        with open(file) as f:
            events += [json.loads(line) for line in f if line.strip()]
    return events
