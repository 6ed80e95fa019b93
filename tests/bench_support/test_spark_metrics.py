"""The Spark benchmark's helpers (bench/spark_metrics.py): the process tree whose memory is summed, and the
per-stage figures read from a Spark event log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.spark_metrics import process_tree, read_event_log, stage_figures, tree_rss_kb


def test_process_tree_holds_the_root_and_all_its_descendants_only() -> None:
    parents = {10: 1, 11: 10, 12: 11, 13: 10, 20: 1, 21: 20}
    assert process_tree(10, parents) == {10, 11, 12, 13}
    assert process_tree(21, parents) == {21}


def test_tree_rss_counts_a_child_process() -> None:
    alone = tree_rss_kb(os.getpid())
    # a child holding ~200 MB: the tree's RSS must grow by about that much
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; b = bytearray(200 * 2**20); print(1, flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"1"
        with_child = tree_rss_kb(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert with_child - alone > 190 * 1024


def _task(stage: int, seconds: float, shuffle_read: int = 0, shuffle_write: int = 0, read: int = 0) -> dict:
    return {
        "Event": "SparkListenerTaskEnd",
        "Stage ID": stage,
        "Task Info": {"Launch Time": 1_000, "Finish Time": 1_000 + int(seconds * 1000)},
        "Task Metrics": {
            "Input Metrics": {"Bytes Read": read},
            "Shuffle Read Metrics": {"Local Bytes Read": shuffle_read, "Remote Bytes Read": 1},
            "Shuffle Write Metrics": {"Shuffle Bytes Written": shuffle_write},
            "Disk Bytes Spilled": 0,
        },
    }


def test_stage_figures_sum_bytes_and_measure_task_skew(tmp_path: Path) -> None:
    events = [
        {"Event": "SparkListenerApplicationStart"},
        _task(0, 1.0, shuffle_write=100, read=1000),
        _task(0, 3.0, shuffle_write=50, read=500),
        _task(1, 2.0, shuffle_read=60),
        _task(1, 2.0, shuffle_read=40),
        _task(1, 8.0, shuffle_read=400),
        {"Event": "SparkListenerStageCompleted", "Stage Info": {"Stage ID": 1, "Stage Name": "toPandas"}},
    ]
    log = tmp_path / "local-1"
    log.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    # the same events as a rolling log: a folder of numbered files (10 sorts after 2 only as a number)
    rolling = tmp_path / "eventlog_v2_local-1"
    rolling.mkdir()
    (rolling / "events_2_local-1").write_text("\n".join(json.dumps(e) for e in events[3:]) + "\n")
    (rolling / "events_10_local-1").write_text("")
    (rolling / "events_1_local-1").write_text("\n".join(json.dumps(e) for e in events[:3]) + "\n")
    (rolling / "appstatus_local-1").write_text("")
    assert read_event_log(rolling) == read_event_log(log) == events
    first, second = stage_figures(read_event_log(log))
    assert (first["stage"], first["tasks"], first["input_bytes"], first["shuffle_write_bytes"]) == (
        0,
        2,
        1500,
        150,
    )
    assert first["shuffle_read_bytes"] == 2  # the remote byte of each task
    assert first["skew"] == pytest.approx(3.0 / 2.0)
    assert second["name"] == "toPandas"
    assert (second["shuffle_read_bytes"], second["shuffle_read_max_task_bytes"]) == (503, 401)
    assert (second["task_seconds_median"], second["task_seconds_max"], second["skew"]) == (2.0, 8.0, 4.0)
