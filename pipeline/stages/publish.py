"""Publishing a scoring run: its three outputs land in `<workdir>/scores/as_of=YYYY-MM-DD/` all at once (a temp
folder that replaces the date's folder whole), and what killed runs left behind is cleaned up."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from churn_pipeline.core.artifacts import AT_RISK_FILE, MANIFEST_FILE, SCORES_FILE, WEBHOOK_LEDGER_FILE
from churn_pipeline.data.io import (
    atomic_directory,
    atomic_write_json,
    atomic_write_parquet,
    file_sha256,
    output_sha256,
)
from churn_pipeline.stages.score_manifest import ScoringManifest

log = logging.getLogger(__name__)

# Delivery state of the exports, kept beside the list it describes (see churn_pipeline.stages.export.webhook).
_CARRIED_OVER = (WEBHOOK_LEDGER_FILE,)
# What churn_pipeline.data.io.atomic_directory leaves when a run dies mid-publish: its temp dir
# (`.as_of=DATE.<mkdtemp's 8 chars>.tmp`) and, killed between its two renames, the replaced `.as_of=DATE.old-PID`.
_PUBLISH_LEFTOVER_RE = re.compile(r"^\.(as_of=\d{4}-\d{2}-\d{2})\.(?:[a-z0-9_]{8}\.tmp|old-\d+)$")
# A leftover is removed only when nothing in it changed for this long before the current run started: a
# live run writes its files within seconds of creating the folder, so it is never this old.
STALE_PUBLISH_MARGIN_SECONDS = 15 * 60


def remove_stale_publish_dirs(scores_root: Path, older_than: float) -> list[str]:
    """Remove the temp folders of killed publishes under `scores_root`; return their names.

    Only folders named as `atomic_directory` names them (its temp dirs, and replaced copies whose date was
    published since), and only when neither the folder nor anything directly in it was modified at or
    after `older_than` (a Unix time), so another run's live folder is never touched.
    """
    removed = []
    if not Path(scores_root).is_dir():
        return removed
    for entry in os.scandir(scores_root):
        m = _PUBLISH_LEFTOVER_RE.match(entry.name)
        if not (m and entry.is_dir(follow_symlinks=False)):
            continue
        if not entry.name.endswith(".tmp") and not (Path(scores_root) / m.group(1)).is_dir():
            continue  # a replaced copy whose successor never landed: the only copy of that date, keep it
        try:
            newest = max([entry.stat().st_mtime] + [e.stat().st_mtime for e in os.scandir(entry.path)])
        except FileNotFoundError:  # its owner finished (renamed or removed it) meanwhile
            continue
        if newest < older_than:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.name)
    if removed:
        log.warning("removed %d leftover folder(s) of killed scoring runs in %s: %s", len(removed), scores_root,
                    ", ".join(sorted(removed)))  # fmt: skip
    return sorted(removed)


# Writes the scores table at the path it is given (a Parquet file, or a folder of parts): how an engine that
# keeps the scores out of the driver's memory (Spark) publishes them.
ScoresWriter = Callable[[Path], None]


def publish_outputs(
    final: Path,
    scores: pd.DataFrame | ScoresWriter,
    at_risk: pd.DataFrame,
    manifest: ScoringManifest,
    timings: dict[str, float],
) -> ScoringManifest:
    """Write the scores, the at-risk list and the manifest into a temp dir that replaces `final` whole.

    `scores` is the frame, or a `ScoresWriter` that writes `scores.parquet` (file or folder) itself. Returns
    the manifest as written: with the outputs' SHA-256 (`output_sha256`) and the `timings` of the steps so far.
    """
    with atomic_directory(final) as tmp:
        if isinstance(scores, pd.DataFrame):
            atomic_write_parquet(scores.reset_index(drop=True), tmp / SCORES_FILE)
        else:
            scores(tmp / SCORES_FILE)
        atomic_write_parquet(at_risk.reset_index(drop=True), tmp / AT_RISK_FILE)
        files = {name: output_sha256(tmp / name) for name in (SCORES_FILE, AT_RISK_FILE)}
        old_at_risk = final / AT_RISK_FILE
        if old_at_risk.is_file() and file_sha256(old_at_risk) == files[AT_RISK_FILE]:
            # Same list as before: its export ledgers still describe it, keep them so re-exports skip delivered rows.
            for name in _CARRIED_OVER:
                if (final / name).is_file():
                    shutil.copy2(final / name, tmp / name)
        written = dataclasses.replace(manifest, files=files, timings_seconds=dict(timings))
        atomic_write_json(written.to_dict(), tmp / MANIFEST_FILE)
    return written
