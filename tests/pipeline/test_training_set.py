"""Feature frames at the boundary, the rolling-snapshot training set, its reuse by fingerprint, the CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import churn_pipeline.stages.training_set as ts_module
from churn_pipeline.cli import app
from churn_pipeline.core.config import Config, FeatureConfig, LabelConfig, SnapshotConfig
from churn_pipeline.core.errors import ConfigError, DataValidationError
from churn_pipeline.data.io import open_source
from churn_pipeline.features.labels import snapshot_dates
from churn_pipeline.stages.training_set import (
    MANIFEST_FILE,
    LabelDefinition,
    TrainingSetManifest,
    compute_features,
    feature_table_path,
    load_or_build_training_set,
    training_set_fingerprint,
    write_feature_table,
)
from tests.features.synthetic import random_frames

DATA_END = dt.date(2024, 10, 26)  # random_frames(start=2024-01-01, days=300): last dates fall on this day


def _write_source(folder: Path, seed: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in random_frames(seed=seed, n_customers=150).items():
        df.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_source(tmp_path_factory.mktemp("source") / "data")


def _config(data_dir: Path, workdir: Path, **overrides: object) -> Config:
    sections = {
        "workdir": workdir,
        "data": {"source": data_dir},
        "label": LabelConfig(horizon_days=30),
        "snapshots": SnapshotConfig(count=3, spacing_days=14),
        "features": FeatureConfig(important_event_types=("login",), event_types=("login", "purchase")),
    }
    sections.update(overrides)
    return Config(**sections)


def _active_ids(customers: pd.DataFrame, as_of: dt.date) -> set:
    t = pd.Timestamp(as_of)
    c = customers
    return set(c.loc[(c.signup_date <= t) & (c.churn_date.isna() | (c.churn_date > t)), "customer_id"])


# ------------------------------------------------------------------------------------------ compute_features


def test_compute_features_defaults_to_the_last_data_date(data_dir: Path, tmp_path: Path) -> None:
    cfg = _config(data_dir, tmp_path)
    source = open_source(data_dir)
    assert source.data_end_date == DATA_END
    frame = compute_features(cfg, source=source)
    customers = pd.read_parquet(data_dir / "customers.parquet")
    assert set(frame["customer_id"]) == _active_ids(customers, DATA_END)
    assert frame.columns[0] == "customer_id"
    assert isinstance(frame["plan"].dtype, pd.CategoricalDtype)
    assert isinstance(frame["loyalty_member"].dtype, pd.CategoricalDtype)
    for name in ("plan", "loyalty_member"):  # sorted categories: the same codes on every run
        assert list(frame[name].cat.categories) == sorted(frame[name].astype(str).unique())
    assert frame["events_30d"].dtype == "int64" and frame["days_since_last_event"].dtype == "float64"


def test_compute_features_opens_the_configured_source(data_dir: Path, tmp_path: Path) -> None:
    frame = compute_features(_config(data_dir, tmp_path), as_of=dt.date(2024, 6, 1))
    customers = pd.read_parquet(data_dir / "customers.parquet")
    assert set(frame["customer_id"]) == _active_ids(customers, dt.date(2024, 6, 1))


def test_as_of_after_the_data_is_refused(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"as-of date 2024-10-27 is after the last date in the data \(2024-10-26\)"
    ):
        compute_features(_config(data_dir, tmp_path), as_of=dt.date(2024, 10, 27))


def test_as_of_before_any_customer_is_an_error(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="no customer is active at that date"):
        compute_features(_config(data_dir, tmp_path), as_of=dt.date(2023, 6, 1))


def test_duplicate_customer_rows_fail_the_boundary_check(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ts_module.feature_table
    monkeypatch.setattr(ts_module, "feature_table", lambda *a: real(*a).union(real(*a), distinct=False))
    with pytest.raises(DataValidationError, match="customer_id is not unique"):
        compute_features(_config(data_dir, tmp_path))


def test_infinite_values_fail_the_boundary_check(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ts_module.feature_table

    def with_inf(*args):
        t = real(*args)
        return t.mutate(tenure_days=ibis.literal(1.0) / ibis.literal(0.0))

    monkeypatch.setattr(ts_module, "feature_table", with_inf)
    with pytest.raises(DataValidationError, match=r"infinite values in \['tenure_days'\]"):
        compute_features(_config(data_dir, tmp_path))


def test_write_feature_table(data_dir: Path, tmp_path: Path) -> None:
    cfg = _config(data_dir, tmp_path)
    result = write_feature_table(cfg, dt.date(2024, 9, 1))
    assert (
        result.path
        == tmp_path / "features" / "as_of=2024-09-01.parquet"
        == feature_table_path(cfg, result.as_of)
    )
    back = pd.read_parquet(result.path)
    pd.testing.assert_frame_equal(back, result.frame)
    assert back["customer_id"].is_monotonic_increasing
    assert result.categorical_features == ["plan", "loyalty_member"]
    assert not [p for p in result.path.parent.iterdir() if p.name.startswith(".")]  # no temp files left


# ------------------------------------------------------------------------------------------ training set


@pytest.fixture(scope="module")
def built(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    cfg = _config(data_dir, tmp_path_factory.mktemp("work"))
    return cfg, load_or_build_training_set(cfg, progress=False)


def test_training_set_stacks_labelled_snapshots(built, data_dir: Path) -> None:
    cfg, ts = built
    dates = [dt.date(2024, 8, 29), dt.date(2024, 9, 12), dt.date(2024, 9, 26)]  # last = 2024-10-26 - 30 days
    assert snapshot_dates(DATA_END, cfg.label, cfg.snapshots) == dates
    frame = ts.frame
    assert list(frame.columns[:2]) == ["customer_id", "snapshot_date"] and frame.columns[-1] == "label"
    assert frame["label"].dtype == "int8" and frame["snapshot_date"].dtype == "datetime64[ns]"
    assert sorted(frame["snapshot_date"].dt.date.unique()) == dates
    assert not frame.duplicated(["customer_id", "snapshot_date"]).any()
    customers = pd.read_parquet(data_dir / "customers.parquet")
    for d in dates:
        snap = frame[frame["snapshot_date"] == pd.Timestamp(d)]
        assert set(snap["customer_id"]) == _active_ids(customers, d)
        churn = customers.set_index("customer_id")["churn_date"]
        horizon_end = pd.Timestamp(d + dt.timedelta(days=30))
        expected = ((churn > pd.Timestamp(d)) & (churn <= horizon_end)).astype("int8")
        assert (
            snap.set_index("customer_id")["label"].sort_index().tolist()
            == expected[snap["customer_id"]].sort_index().tolist()
        )
    assert frame["label"].sum() > 0
    assert isinstance(frame["plan"].dtype, pd.CategoricalDtype)


def test_training_set_manifest(built) -> None:
    cfg, ts = built
    m = ts.manifest
    assert ts.path == cfg.workdir / "training_sets" / m.fingerprint
    on_disk = json.loads((ts.path / "manifest.json").read_text())
    assert on_disk == m.to_json()
    assert TrainingSetManifest.from_json(on_disk) == m
    assert m.fingerprint == training_set_fingerprint(cfg, m.data_fingerprint)
    assert m.data_fingerprint == open_source(cfg.data.source).fingerprint
    assert m.data_end_date == DATA_END
    assert m.label == LabelDefinition("cancellation", 30)
    assert on_disk["label"] == {"kind": "cancellation", "horizon_days": 30}
    assert list(m.features) == [
        c for c in ts.frame.columns if c not in ("customer_id", "snapshot_date", "label")
    ]
    assert m.categorical_features == ("plan", "loyalty_member")
    assert m.rows == len(ts.frame)
    assert m.churn_rate == pytest.approx(ts.frame["label"].mean())
    for snap in m.snapshots:
        rows = ts.frame[ts.frame["snapshot_date"] == pd.Timestamp(snap.date)]
        assert snap.rows == len(rows)
        assert snap.churn_rate == pytest.approx(rows["label"].mean())
        assert snap.churners == rows["label"].sum()


# A manifest.json as the builder wrote it before the manifest had a type (keys sorted, two-space indent):
# such files must keep loading, and a manifest must still be written in exactly this form.
STORED_MANIFEST = """{
  "categorical_features": [
    "plan"
  ],
  "churn_rate": 0.125,
  "data_end_date": "2024-10-26",
  "data_fingerprint": "d41d8cd98f00b204",
  "data_source": "/data/acme",
  "feature_config": {
    "windows": [
      7,
      30
    ]
  },
  "feature_set_version": "2",
  "features": [
    "tenure_days",
    "plan"
  ],
  "fingerprint": "0123456789abcdef",
  "label": {
    "horizon_days": 30,
    "inactivity_lookback_days": 21,
    "kind": "inactivity"
  },
  "rows": 16,
  "snapshot_config": {
    "count": 2,
    "spacing_days": 14
  },
  "snapshots": [
    {
      "churn_rate": 0.1,
      "date": "2024-09-12",
      "rows": 10
    },
    {
      "churn_rate": 0.16666666666666666,
      "date": "2024-09-26",
      "rows": 6
    }
  ]
}
"""


def test_a_stored_manifest_loads_and_is_written_back_unchanged(tmp_path: Path) -> None:
    stored = tmp_path / "stored.json"
    stored.write_text(STORED_MANIFEST)
    m = TrainingSetManifest.read(stored)
    assert m.features == ("tenure_days", "plan") and m.data_source == "/data/acme"
    assert m.label == LabelDefinition("inactivity", 30, 21)
    assert [(s.date, s.rows, s.churners) for s in m.snapshots] == [
        (dt.date(2024, 9, 12), 10, 1),
        (dt.date(2024, 9, 26), 6, 1),
    ]
    m.write(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text() == STORED_MANIFEST


def test_a_manifest_missing_keys_is_rebuilt(data_dir: Path, tmp_path: Path) -> None:
    cfg = _config(data_dir, tmp_path, snapshots=SnapshotConfig(count=2, spacing_days=14))
    first = load_or_build_training_set(cfg, progress=False)
    manifest = first.path / MANIFEST_FILE
    good = manifest.read_text()
    manifest.write_text(json.dumps({"fingerprint": first.manifest.fingerprint, "rows": first.manifest.rows}))
    again = load_or_build_training_set(cfg, progress=False)
    assert again.manifest == first.manifest and manifest.read_text() == good


def test_training_set_is_reused_while_the_fingerprint_matches(built, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, first = built
    stamp = (first.path / "training_set.parquet").stat().st_mtime_ns

    def must_not_build(*args, **kwargs):
        raise AssertionError("rebuilt although the fingerprint matches")

    monkeypatch.setattr(ts_module, "_snapshot_frame", must_not_build)
    again = load_or_build_training_set(cfg, progress=False)
    assert again.path == first.path and again.manifest == first.manifest
    pd.testing.assert_frame_equal(again.frame, first.frame)
    assert (first.path / "training_set.parquet").stat().st_mtime_ns == stamp


def test_a_config_or_data_change_builds_a_new_training_set(built, tmp_path: Path) -> None:
    cfg, first = built
    longer = cfg.model_copy(update={"label": LabelConfig(horizon_days=14)})
    other = load_or_build_training_set(longer, progress=False)
    assert other.path != first.path
    assert other.manifest.label.horizon_days == 14
    assert other.manifest.data_fingerprint == first.manifest.data_fingerprint

    new_data = _write_source(tmp_path / "data", seed=3)
    moved = load_or_build_training_set(
        cfg.model_copy(update={"data": cfg.data.model_copy(update={"source": new_data})}), progress=False
    )
    assert moved.manifest.data_fingerprint != first.manifest.data_fingerprint
    assert moved.path != first.path


def test_a_failed_build_leaves_nothing_behind(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config(data_dir, tmp_path)
    real = ts_module._snapshot_frame
    calls = []

    def fail_on_second(source, cfg_, as_of):
        calls.append(as_of)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(source, cfg_, as_of)

    monkeypatch.setattr(ts_module, "_snapshot_frame", fail_on_second)
    with pytest.raises(RuntimeError, match="disk full"):
        load_or_build_training_set(cfg, progress=False)
    sets = tmp_path / "training_sets"
    assert not sets.exists() or list(sets.iterdir()) == []


def test_snapshots_reaching_before_the_data_are_a_config_error(data_dir: Path, tmp_path: Path) -> None:
    cfg = _config(data_dir, tmp_path, snapshots=SnapshotConfig(count=40, spacing_days=14))
    with pytest.raises(ConfigError, match="lower snapshots.count or snapshots.spacing_days"):
        load_or_build_training_set(cfg, progress=False)


def test_inactivity_training_set_labels_only_recently_active_customers(
    data_dir: Path, tmp_path: Path
) -> None:
    cfg = _config(
        data_dir, tmp_path, label=LabelConfig(kind="inactivity", horizon_days=30, inactivity_lookback_days=30)
    )
    ts = load_or_build_training_set(cfg, progress=False)
    assert ts.manifest.label == LabelDefinition("inactivity", 30, 30)
    assert ts.manifest.to_json()["label"] == {
        "kind": "inactivity",
        "horizon_days": 30,
        "inactivity_lookback_days": 30,
    }
    # labelled customers all had an event in the 30 days ending at the snapshot
    assert (ts.frame["active_days_30d"] > 0).all()
    assert 0 < ts.frame["label"].mean() < 1


# ------------------------------------------------------------------------------------------ CLI


def test_cli_features_writes_the_table(data_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["features", "--data", str(data_dir), "--out", str(tmp_path), "--as-of", "2024-09-01"]
    )
    assert result.exit_code == 0, result.output
    path = tmp_path / "features" / "as_of=2024-09-01.parquet"
    assert path.is_file()
    frame = pd.read_parquet(path)
    assert f"{len(frame):,} active customers" in result.output and "as_of=2024-09-01.parquet" in result.output


def test_cli_build_training_set_prints_snapshots(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("snapshots:\n  count: 2\n  spacing_days: 7\nlabel:\n  horizon_days: 30\n")
    args = ["build-training-set", "--config", str(config), "--data", str(data_dir), "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2024-09-19" in result.output and "2024-09-26" in result.output
    manifests = list((tmp_path / "training_sets").glob("*/manifest.json"))
    assert len(manifests) == 1
    m = json.loads(manifests[0].read_text())
    assert f"{m['rows']:,}" in result.output and m["fingerprint"] in result.output


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["features", "--as-of", "2024-13-01"], 2, "is not a date"),
        (["features", "--as-of", "2030-01-01"], 2, "after the last date in the data"),
        (["build-training-set", "--data", "/nonexistent/data"], 2, "does not exist"),
    ],
)
def test_cli_errors_are_clear(
    data_dir: Path, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    if "--data" not in args:
        args = [*args, "--data", str(data_dir)]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == code
    assert message in result.output
    assert not (tmp_path / "features").exists() or not list((tmp_path / "features").iterdir())


@pytest.mark.slow
def test_training_set_of_the_simulated_company(company, tmp_path: Path) -> None:
    cfg = company.config_in(tmp_path)
    ts = load_or_build_training_set(cfg, progress=False)
    data_end = open_source(cfg.data.source).data_end_date
    assert [s.date for s in ts.manifest.snapshots] == snapshot_dates(data_end, cfg.label, cfg.snapshots)
    assert len(ts.manifest.snapshots) == 4
    rates = [s.churn_rate for s in ts.manifest.snapshots]
    assert all(0 < r < 0.5 for r in rates)
    assert "events_login_30d" in ts.frame.columns and "days_since_last_purchase" in ts.frame.columns
    assert not ts.frame.duplicated(["customer_id", "snapshot_date"]).any()
    # rows in a fixed order (snapshot, then customer): the engine's order varies and bagging is by position
    order = ts.frame[["snapshot_date", "customer_id"]]
    assert order.equals(order.sort_values(["snapshot_date", "customer_id"], ignore_index=True))


# ------------------------------------------------------------------------------------------ BG/NBD columns


def test_btyd_columns_are_the_same_in_a_snapshot_and_in_scoring(data_dir: Path, tmp_path: Path) -> None:
    """The snapshot fits BG/NBD on every active customer (not only the labelled, recently active ones), so
    a labelled customer's P(alive) equals what `compute_features` (scoring) gives as of that date."""
    cfg = _config(
        data_dir, tmp_path, label=LabelConfig(kind="inactivity", horizon_days=30, inactivity_lookback_days=30)
    )
    ts = load_or_build_training_set(cfg, progress=False)
    assert ts.frame.columns[-1] == "label"
    assert {"btyd_p_alive", "btyd_expected_events"} <= set(ts.features)
    as_of = snapshot_dates(DATA_END, cfg.label, cfg.snapshots)[-1]
    snap = ts.frame[ts.frame["snapshot_date"] == pd.Timestamp(as_of)].set_index("customer_id")
    scored = compute_features(cfg, as_of).set_index("customer_id")
    assert len(scored) > len(snap)  # scoring sees customers the inactivity label leaves out
    for name in ("btyd_p_alive", "btyd_expected_events"):
        assert snap[name].notna().all()
        pd.testing.assert_series_equal(snap[name], scored.loc[snap.index, name])
    # a longer horizon expects more visits: the horizon really comes from label.horizon_days
    longer = cfg.model_copy(update={"label": cfg.label.model_copy(update={"horizon_days": 60})})
    more = compute_features(longer, as_of).set_index("customer_id")["btyd_expected_events"]
    assert (more.loc[snap.index] > snap["btyd_expected_events"]).all()


def test_btyd_can_be_turned_off(data_dir: Path, tmp_path: Path) -> None:
    cfg = _config(
        data_dir,
        tmp_path,
        features=FeatureConfig(important_event_types=("login",), frequency=True, btyd=False),
    )
    frame = compute_features(cfg)
    assert "visit_gap_mean_days" in frame.columns
    assert "btyd_p_alive" not in frame.columns and "btyd_expected_events" not in frame.columns


def test_frequency_family_follows_the_label_kind_unless_set(data_dir: Path, tmp_path: Path) -> None:
    inactivity = LabelConfig(kind="inactivity", horizon_days=30, inactivity_lookback_days=30)
    auto = FeatureConfig(important_event_types=("login",))
    cancellation = compute_features(_config(data_dir, tmp_path, features=auto))
    assert not any(c.startswith(("visit_", "btyd_")) for c in cancellation.columns)
    non_contractual = compute_features(_config(data_dir, tmp_path, features=auto, label=inactivity))
    assert {"visit_gap_mean_days", "btyd_p_alive"} <= set(non_contractual.columns)
    forced = FeatureConfig(important_event_types=("login",), frequency=True)
    assert "btyd_p_alive" in compute_features(_config(data_dir, tmp_path, features=forced)).columns


def _concatenated(frames: list[pd.DataFrame], categorical: list[str]) -> pd.DataFrame:
    """The training set as it was built before it was written one snapshot at a time: all in one concat."""
    frame = pd.concat(frames, ignore_index=True)
    frame = ts_module._as_categories(frame, categorical)
    frame["snapshot_date"] = frame["snapshot_date"].astype("datetime64[ns]")
    frame["label"] = frame["label"].astype("int8")
    return frame


def test_training_set_written_per_snapshot_equals_the_concatenation(built) -> None:
    cfg, ts = built
    source = open_source(cfg.data.source)
    dates = snapshot_dates(source.data_end_date, cfg.label, cfg.snapshots)
    frames = [ts_module._snapshot_frame(source, cfg, d) for d in dates]
    expected = _concatenated(frames, ts.categorical_features)
    loaded = load_or_build_training_set(cfg, progress=False)  # read back from the file
    pd.testing.assert_frame_equal(loaded.frame, expected)
    file = pq.ParquetFile(ts.path / "training_set.parquet")
    assert file.num_row_groups == len(dates)  # one row group per snapshot
    # a filtered read keeps exactly the rows the filter keeps, in order, with the same dtypes
    odd = loaded.read(lambda part: part["customer_id"].to_numpy() % 2 == 1)
    pd.testing.assert_frame_equal(odd, expected[expected["customer_id"] % 2 == 1].reset_index(drop=True))


@pytest.mark.filterwarnings("ignore:The behavior of DataFrame concatenation:FutureWarning")  # the reference
def test_snapshots_with_different_dtypes_and_categories_stack_like_a_concat(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An integer column missing values in one snapshot only, categories seen in one snapshot only, string ids:
    the file holds what pandas' concat of the snapshots gave."""
    cfg = _config(data_dir, tmp_path)
    made: list[pd.DataFrame] = []

    def snapshot(source, cfg, as_of):
        i = len(made)
        n = 4 + i
        frame = pd.DataFrame(
            {
                "customer_id": pd.Categorical([f"c{i}{k}" for k in range(n)]),
                "snapshot_date": pd.Timestamp(as_of),
                "count": np.arange(n, dtype=np.int64) if i != 1 else np.where(np.arange(n) == 2, np.nan, 0.5),
                "plan": pd.Categorical([["basic", "pro"][k % 2] if i else "zeta" for k in range(n)]),
                "loyalty_member": pd.Categorical([None] * n if i == 2 else ["yes"] * n),
                "label": np.arange(n, dtype=np.int64) % 2,
            }
        )
        made.append(frame.copy())
        return frame

    monkeypatch.setattr(ts_module, "_snapshot_frame", snapshot)
    ts = load_or_build_training_set(cfg, progress=False)
    expected = _concatenated(made, ["plan", "loyalty_member"])
    assert expected["count"].dtype == np.float64 and expected["customer_id"].dtype == object
    pd.testing.assert_frame_equal(ts.frame, expected)
    assert ts.manifest.rows == len(expected) == 4 + 5 + 6
    assert [s.churn_rate for s in ts.manifest.snapshots] == [pytest.approx(f["label"].mean()) for f in made]
