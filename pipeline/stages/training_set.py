"""Feature frames for one date, and the labelled rolling-snapshot training set (cached by fingerprint).

`compute_features` is the one way a stage gets features as pandas: it opens and validates the source when
none is given, builds `features.build.feature_table` as of a date, executes it (DuckDB by default) and
checks the frame at the boundary (non-empty, unique customer ids, the expected columns, no infinities).

`load_or_build_training_set` stacks snapshots `features.labels.snapshot_dates(...)` (the latest is
`data_end - horizon`, so every label is fully observed) with a `snapshot_date` column and the `label`,
writes `training_set.parquet` + `manifest.json` under `<workdir>/training_sets/<fingerprint>/`
atomically, and reuses that folder while the fingerprint (data fingerprint + feature/label/snapshot
config + feature-set version) is unchanged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from churn_pipeline.core.config import Config, LabelConfig
from churn_pipeline.core.errors import ConfigError, DataValidationError
from churn_pipeline.data.io import (
    Source,
    atomic_directory,
    atomic_write_json,
    atomic_write_parquet,
    open_source,
)
from churn_pipeline.features.btyd import add_btyd_columns
from churn_pipeline.features.build import FEATURE_SET_VERSION, categorical_features, feature_table
from churn_pipeline.features.labels import churn_labels, snapshot_dates

log = logging.getLogger(__name__)

TRAINING_SET_FILE = "training_set.parquet"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class LabelDefinition:
    """What a training set's labels mean (manifest `label`): the kind and horizon, and for an inactivity
    label its lookback (absent from the file otherwise)."""

    kind: str
    horizon_days: int
    inactivity_lookback_days: int | None = None

    @classmethod
    def of(cls, label: LabelConfig) -> LabelDefinition:
        """The definition the label config gives."""
        lookback = label.inactivity_lookback_days if label.kind == "inactivity" else None
        return cls(label.kind, label.horizon_days, lookback)

    def to_json(self) -> dict[str, Any]:
        """The manifest's `label` object."""
        out: dict[str, Any] = {"kind": self.kind, "horizon_days": self.horizon_days}
        if self.inactivity_lookback_days is not None:
            out["inactivity_lookback_days"] = self.inactivity_lookback_days
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabelDefinition:
        """Read a manifest's `label` object."""
        return cls(data["kind"], data["horizon_days"], data.get("inactivity_lookback_days"))


@dataclass(frozen=True)
class SnapshotSummary:
    """One snapshot of a training set: its date, rows and churn rate (manifest `snapshots`)."""

    date: dt.date
    rows: int
    churn_rate: float

    @property
    def churners(self) -> int:
        """Labelled churners (the file keeps the rate, which rows x rate gives back to the nearest integer)."""
        return int(round(self.rows * self.churn_rate))

    def to_json(self) -> dict[str, Any]:
        """One entry of the manifest's `snapshots`."""
        return {"date": self.date.isoformat(), "rows": self.rows, "churn_rate": self.churn_rate}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SnapshotSummary:
        """Read one entry of the manifest's `snapshots`."""
        return cls(dt.date.fromisoformat(data["date"]), data["rows"], data["churn_rate"])


@dataclass(frozen=True)
class TrainingSetManifest:
    """What a training set holds and what it was built from: `manifest.json` beside its Parquet file.

    `to_json`/`from_json` convert to and from the file's JSON object (the same keys and values since the
    first manifest), so sets built before this type load as they are."""

    fingerprint: str
    data_fingerprint: str
    data_source: str | None
    data_end_date: dt.date
    feature_set_version: str
    snapshots: tuple[SnapshotSummary, ...]
    rows: int
    churn_rate: float
    features: tuple[str, ...]
    categorical_features: tuple[str, ...]
    label: LabelDefinition
    feature_config: dict[str, Any]  # the features/snapshots config sections, as dumped (a record, not read)
    snapshot_config: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The manifest as its JSON object."""
        return {
            "fingerprint": self.fingerprint,
            "data_fingerprint": self.data_fingerprint,
            "data_source": self.data_source,
            "data_end_date": self.data_end_date.isoformat(),
            "feature_set_version": self.feature_set_version,
            "snapshots": [s.to_json() for s in self.snapshots],
            "rows": self.rows,
            "churn_rate": self.churn_rate,
            "features": list(self.features),
            "categorical_features": list(self.categorical_features),
            "label": self.label.to_json(),
            "feature_config": self.feature_config,
            "snapshot_config": self.snapshot_config,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainingSetManifest:
        """Read the manifest's JSON object (KeyError, TypeError or ValueError when it is not one)."""
        return cls(
            fingerprint=data["fingerprint"],
            data_fingerprint=data["data_fingerprint"],
            data_source=data["data_source"],
            data_end_date=dt.date.fromisoformat(data["data_end_date"]),
            feature_set_version=data["feature_set_version"],
            snapshots=tuple(SnapshotSummary.from_json(s) for s in data["snapshots"]),
            rows=data["rows"],
            churn_rate=data["churn_rate"],
            features=tuple(data["features"]),
            categorical_features=tuple(data["categorical_features"]),
            label=LabelDefinition.from_json(data["label"]),
            feature_config=data["feature_config"],
            snapshot_config=data["snapshot_config"],
        )

    @classmethod
    def read(cls, path: Path) -> TrainingSetManifest:
        """The manifest stored at `path`."""
        return cls.from_json(json.loads(path.read_text()))

    def write(self, path: Path) -> None:
        """Store the manifest at `path` atomically."""
        atomic_write_json(self.to_json(), path)


class TrainingSet:
    """Stacked labelled snapshots: `frame` has customer_id, snapshot_date, features..., label (int8).

    Written one snapshot per Parquet row group; `frame` reads the whole file on first use (kept), `read` only
    the rows a filter keeps, one snapshot at a time, so a caller that needs a sample never holds all rows."""

    def __init__(self, frame: pd.DataFrame | None, manifest: TrainingSetManifest, path: Path):
        self._frame = frame
        self.manifest = manifest
        self.path = path

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = self.read()
        return self._frame

    @frame.setter
    def frame(self, value: pd.DataFrame) -> None:
        self._frame = value

    def read(self, keep: Callable[[pd.DataFrame], np.ndarray] | None = None) -> pd.DataFrame:
        """The rows `keep(snapshot_frame)` (a boolean mask) keeps, snapshot by snapshot; all without it."""
        if self._frame is not None:
            return self._frame if keep is None else self._frame.loc[keep(self._frame)].reset_index(drop=True)
        return read_training_set(self.path / TRAINING_SET_FILE, self.categorical_features, keep)

    @property
    def features(self) -> list[str]:
        return list(self.manifest.features)

    @property
    def categorical_features(self) -> list[str]:
        return list(self.manifest.categorical_features)


def read_training_set(
    path: Path, categorical: list[str], keep: Callable[[pd.DataFrame], np.ndarray] | None = None
) -> pd.DataFrame:
    """A training-set Parquet file as the frame it was built from (sorted categories, int8 label); with `keep`,
    only the rows it keeps, one row group (snapshot) at a time."""
    file = pq.ParquetFile(path)
    # self_destruct frees each Arrow column once converted: the read peaks near one copy of the rows, not two
    arrow_to_pandas = {"split_blocks": True, "self_destruct": True}
    if keep is None:
        frame = file.read().to_pandas(**arrow_to_pandas)
    else:
        parts = []
        for i in range(file.num_row_groups):
            part = file.read_row_group(i).to_pandas(**arrow_to_pandas)
            parts.append(part.loc[keep(part)])
            del part
        # categoricals of different snapshots have different categories: concat makes them objects, which
        # _as_categories turns back into categories (sorted, as when the file is read whole)
        frame = pd.concat(parts, ignore_index=True) if parts else file.schema_arrow.empty_table().to_pandas()
        del parts
    pa.default_memory_pool().release_unused()  # Arrow's allocator keeps freed pages otherwise
    return _as_categories(frame, categorical)


@dataclass
class FeatureTableResult:
    """A feature table written by `write_feature_table` (for `churn features`)."""

    as_of: dt.date
    path: Path
    frame: pd.DataFrame
    categorical_features: list[str]


def _resolve_as_of(source: Source, as_of: dt.date | None) -> dt.date:
    if as_of is None:
        return source.data_end_date
    if as_of > source.data_end_date:
        raise ConfigError(
            f"as-of date {as_of} is after the last date in the data ({source.data_end_date}): features would "
            f"miss the days in between; use --as-of {source.data_end_date} or earlier"
        )
    return as_of


def _execute_checked(expr: Any, as_of: dt.date, what: str) -> pd.DataFrame:
    """Run an ibis feature expression and check the frame it gives before anyone uses it."""
    expected = list(expr.columns)
    # strings arrive as categories straight from Arrow's dictionary encoding (no Python string per cell)
    frame = expr.to_pyarrow().to_pandas(strings_to_categorical=True)
    problems: list[str] = []
    if list(frame.columns) != expected:
        problems.append(
            f"{what} as of {as_of}: columns {list(frame.columns)} differ from the expected {expected} "
            f"(a feature builder or backend changed the schema)"
        )
    if frame.empty:
        problems.append(
            f"{what} as of {as_of}: no customer is active at that date (signed up by it and not churned); "
            f"choose a later as-of date or check customers.signup_date/churn_date"
        )
    dup = frame["customer_id"].duplicated(keep=False) if "customer_id" in frame else pd.Series(dtype=bool)
    if dup.any():
        examples = ", ".join(map(str, frame.loc[dup, "customer_id"].drop_duplicates().head(3)))
        problems.append(
            f"{what} as of {as_of}: customer_id is not unique ({int(dup.sum())} rows share an id, e.g. {examples}); "
            f"a family table produced several rows per customer"
        )
    # only floats can hold infinities; one column at a time avoids a mixed-dtype copy of the whole frame
    bad = [c for c in frame.columns if frame[c].dtype.kind == "f" and np.isinf(frame[c].to_numpy()).any()]
    if bad:
        problems.append(f"{what} as of {as_of}: infinite values in {bad}; ratios must divide by NULLIF(x, 0)")
    if problems:
        raise DataValidationError(problems)
    return frame


def _as_categories(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Categorical features as pandas `category` with sorted categories (stable codes across runs)."""
    for name in columns:
        col = frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            frame[name] = col.cat.reorder_categories(sorted(col.cat.categories))
        else:
            frame[name] = col.astype("category")
    return frame


def in_customer_order(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` sorted by customer_id. The engine's row order changes between runs (parallel hash joins), and
    LightGBM's bagging samples rows by position: without this, the same data trained different models."""
    return frame.sort_values("customer_id", kind="stable", ignore_index=True)


def compute_features(cfg: Config, as_of: dt.date | None = None, source: Source | None = None) -> pd.DataFrame:
    """Feature frame of every customer active at `as_of` (default: the last date in the data).

    Columns: customer_id, then the features; categorical features have pandas `category` dtype. Rows come
    in the engine's order, which varies between runs: sort (`in_customer_order`) where order matters.
    """
    source = source if source is not None else open_source(cfg.data.source, cfg=cfg.data, as_of=as_of)
    as_of = _resolve_as_of(source, as_of)
    expr = feature_table(source.tables, as_of, cfg.features)
    frame = _with_btyd(_execute_checked(expr, as_of, "feature table"), source, cfg)
    return _as_categories(frame, categorical_features(expr))


def btyd_on(source: Source, cfg: Config) -> bool:
    """Whether feature frames of `source` get the BG/NBD columns (`features.btyd`, frequency on, events)."""
    return cfg.features.btyd and cfg.features.frequency is not False and source.tables.events is not None


def _with_btyd(frame: pd.DataFrame, source: Source, cfg: Config) -> pd.DataFrame:
    """The BG/NBD columns (`features.btyd`), fitted on the executed frame's customers, when configured.

    They cannot be an ibis expression (a maximum-likelihood fit over all customers), so they are added here,
    the one place that executes feature tables for training snapshots and scoring alike; `frame` must hold
    every customer active at the as-of date, so both fit the same population.
    """
    if not btyd_on(source, cfg):
        return frame
    return add_btyd_columns(frame, cfg.label.horizon_days, cfg.features.btyd_max_fit_customers)


def feature_table_path(cfg: Config, as_of: dt.date) -> Path:
    return cfg.workdir / "features" / f"as_of={as_of.isoformat()}.parquet"


def write_feature_table(
    cfg: Config, as_of: dt.date | None = None, source: Source | None = None
) -> FeatureTableResult:
    """Compute the feature table as of a date and write it to `<workdir>/features/as_of=YYYY-MM-DD.parquet`."""
    source = source if source is not None else open_source(cfg.data.source, cfg=cfg.data, as_of=as_of)
    as_of = _resolve_as_of(source, as_of)
    frame = in_customer_order(compute_features(cfg, as_of, source))
    path = feature_table_path(cfg, as_of)
    atomic_write_parquet(frame, path)
    categorical = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    return FeatureTableResult(as_of, path, frame, categorical)


def training_set_fingerprint(cfg: Config, data_fingerprint: str) -> str:
    """Identity of a training set: the data, and every setting that changes its rows, columns or labels."""
    payload = {
        "data": data_fingerprint,
        "features": cfg.features.model_dump(mode="json"),
        "label": cfg.label.model_dump(mode="json"),
        "snapshots": cfg.snapshots.model_dump(mode="json"),
        "feature_set_version": FEATURE_SET_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def training_set_dir(cfg: Config, fingerprint: str) -> Path:
    return cfg.workdir / "training_sets" / fingerprint


def _load_cached(path: Path, fingerprint: str) -> TrainingSet | None:
    manifest_path, data_path = path / MANIFEST_FILE, path / TRAINING_SET_FILE
    if not (manifest_path.is_file() and data_path.is_file()):
        return None
    try:
        manifest = TrainingSetManifest.read(manifest_path)
    except (OSError, ValueError, KeyError, TypeError) as e:  # JSONDecodeError is a ValueError
        log.warning("ignoring unreadable training-set manifest %s (%s): rebuilding", manifest_path, e)
        return None
    if manifest.fingerprint != fingerprint:
        return None
    log.info("reusing training set %s (%d rows, fingerprint %s)", path, manifest.rows, fingerprint)
    return TrainingSet(None, manifest, path)


def _snapshot_frame(source: Source, cfg: Config, as_of: dt.date) -> pd.DataFrame:
    features = feature_table(source.tables, as_of, cfg.features)
    labels = churn_labels(source.tables, as_of, cfg.label)
    if not btyd_on(source, cfg):
        expr = features.inner_join(labels, "customer_id")
        frame = in_customer_order(_execute_checked(expr, as_of, "training snapshot"))
        frame.insert(1, "snapshot_date", pd.Timestamp(as_of))
        return frame
    # every active customer, labelled or not (label.kind=inactivity labels only the recently active): the
    # BG/NBD fit sees the same population here as in scoring; the unlabelled rows go after it
    joined = features.left_join(labels, features.customer_id == labels.customer_id)
    expr = joined.select(*[features[c] for c in features.columns], labels.label)
    frame = _with_btyd(_execute_checked(expr, as_of, "training snapshot"), source, cfg)
    frame = frame[frame["label"].notna()]
    if frame.empty:
        raise DataValidationError(
            [f"training snapshot as of {as_of}: no customer is active at that date with a label"]
        )
    label = frame.pop("label").astype("int8")
    frame = in_customer_order(frame.assign(label=label))
    frame.insert(1, "snapshot_date", pd.Timestamp(as_of))
    return frame


def load_or_build_training_set(
    cfg: Config, *, source: Source | None = None, progress: bool = True
) -> TrainingSet:
    """The training set for `cfg`: reused from `<workdir>/training_sets/<fingerprint>/` when present, else
    built from rolling snapshots and written there atomically."""
    source = source if source is not None else open_source(cfg.data.source, cfg=cfg.data)
    fingerprint = training_set_fingerprint(cfg, source.fingerprint)
    path = training_set_dir(cfg, fingerprint)
    cached = _load_cached(path, fingerprint)
    if cached is not None:
        return cached

    dates = snapshot_dates(source.data_end_date, cfg.label, cfg.snapshots)
    categorical = categorical_features(feature_table(source.tables, dates[-1], cfg.features))
    with atomic_directory(path) as tmp:
        parts = tmp / "snapshots"
        parts.mkdir()
        counts, features = _write_snapshots(source, cfg, dates, categorical, parts, progress)
        _stack_snapshots(sorted(parts.iterdir()), tmp / TRAINING_SET_FILE, categorical)
        shutil.rmtree(parts)
        manifest = _manifest(cfg, source, fingerprint, counts, features, categorical)
        manifest.write(tmp / MANIFEST_FILE)
    log.info("wrote training set %s (%d rows, %d features)", path, manifest.rows, len(features))
    if source.engine == "spark":
        log.info(
            "features and labels ran on Spark; only the training set (%d rows x %d columns, one snapshot at "
            "a time) came to the driver",
            manifest.rows,
            len(features) + 3,
        )
    return TrainingSet(None, manifest, path)


@dataclass(frozen=True)
class _SnapshotCount:
    date: dt.date
    rows: int
    churners: int


def _write_snapshots(
    source: Source, cfg: Config, dates: list[dt.date], categorical: list[str], folder: Path, progress: bool
) -> tuple[list[_SnapshotCount], list[str]]:
    """Each snapshot as `<folder>/NNNN.parquet` (one in memory at a time: the stacked set never is, it would be
    2x its size in a concat); their counts and the feature columns."""
    counts: list[_SnapshotCount] = []
    features: list[str] = []
    with Progress(
        TextColumn("[bold]training set[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not progress,
        transient=True,
    ) as bar:
        task = bar.add_task("snapshots", total=len(dates))
        for i, as_of in enumerate(dates):
            bar.update(task, description=f"snapshot {as_of}")
            frame = _labelled_snapshot(source, cfg, as_of, dates)
            features = [c for c in frame.columns if c not in ("customer_id", "snapshot_date", "label")]
            counts.append(_SnapshotCount(as_of, len(frame), int(frame["label"].to_numpy().sum())))
            pq.write_table(_snapshot_table(frame, categorical), folder / f"{i:04d}.parquet")
            del frame
            bar.advance(task)
    return counts, features


def _labelled_snapshot(source: Source, cfg: Config, as_of: dt.date, dates: list[dt.date]) -> pd.DataFrame:
    """`_snapshot_frame`, with a snapshot before the data's customers reported as the config error it is."""
    try:
        return _snapshot_frame(source, cfg, as_of)
    except DataValidationError as e:
        if any("no customer is active" in p for p in e.problems):
            raise ConfigError(
                f"training snapshot {as_of} has no labelled customers: the snapshots reach back before "
                f"the data ({len(dates)} snapshots every {cfg.snapshots.spacing_days} days ending "
                f"{dates[-1]}); lower snapshots.count or snapshots.spacing_days"
            ) from e
        raise


def _manifest(
    cfg: Config,
    source: Source,
    fingerprint: str,
    counts: list[_SnapshotCount],
    features: list[str],
    categorical: list[str],
) -> TrainingSetManifest:
    rows = sum(c.rows for c in counts)
    return TrainingSetManifest(
        fingerprint=fingerprint,
        data_fingerprint=source.fingerprint,
        data_source=source.label,
        data_end_date=source.data_end_date,
        feature_set_version=FEATURE_SET_VERSION,
        snapshots=tuple(SnapshotSummary(c.date, c.rows, c.churners / c.rows) for c in counts),
        rows=rows,
        churn_rate=sum(c.churners for c in counts) / rows,
        features=tuple(features),
        categorical_features=tuple(categorical),
        label=LabelDefinition.of(cfg.label),
        feature_config=cfg.features.model_dump(mode="json"),
        snapshot_config=cfg.snapshots.model_dump(mode="json"),
    )


def _snapshot_table(frame: pd.DataFrame, categorical: list[str]) -> pa.Table:
    """One snapshot as Arrow, in the dtypes of the stacked set (categoricals as dictionary strings)."""
    frame["snapshot_date"] = frame["snapshot_date"].astype("datetime64[ns]")
    frame["label"] = frame["label"].astype("int8")
    return pa.Table.from_pandas(_as_categories(frame, categorical), preserve_index=False)


def _string_type(categorical: bool) -> pa.DataType:
    return pa.dictionary(pa.int32(), pa.string()) if categorical else pa.string()


def _stack_snapshots(files: list[Path], out: Path, categorical: list[str]) -> None:
    """The snapshot files as one Parquet file, one row group each, in order. Their schemas are unified first
    the way a pandas concat would (an integer column with no missing values in one snapshot but some in
    another becomes float64 in all; strings other than the categorical features lose their per-snapshot
    categories), then each snapshot is cast to it and appended."""
    schemas = [pq.read_schema(f) for f in files]
    schema = pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
    # pandas metadata of the first file (column order, index): dtypes are restored from the Arrow types
    schema = schema.with_metadata(schemas[0].metadata)
    schema = pa.schema(
        [
            pa.field(f.name, _string_type(f.name in categorical)) if pa.types.is_dictionary(f.type) else f
            for f in schema
        ],
        metadata=schema.metadata,
    )
    with pq.ParquetWriter(out, schema) as writer:
        for f in files:
            table = pq.read_table(f)
            writer.write_table(table.cast(schema), row_group_size=max(table.num_rows, 1))
            del table
