"""Hostile inputs that used to pass silently: each must be typed right or reported, naming table and column.

One test (or a few) per probe: the same company as CSV instead of Parquet, CSV timestamps with offsets,
future dates, non-finite numbers, exact duplicate rows.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from churn_pipeline.cli import app
from churn_pipeline.core.config import DataConfig
from churn_pipeline.core.errors import DataValidationError
from churn_pipeline.data.io import open_source, source_from_frames, utc_today
from churn_pipeline.stages.training_set import compute_features, in_customer_order, load_or_build_training_set
from tests.pipeline.test_contract import customers, events, payments, surveys

runner = CliRunner()
TODAY = dt.date(2024, 6, 1)  # the reference date of the tests that call open_source directly

TABLES = ("customers", "events", "support_contacts", "surveys", "payments")


def problems(folder: Path, **kwargs) -> list[str]:
    kwargs.setdefault("today", TODAY)
    with pytest.raises(DataValidationError) as info:
        open_source(folder, **kwargs)
    return info.value.problems


def one_problem_about(found: list[str], prefix: str) -> str:
    hits = [p for p in found if p.startswith(prefix)]
    assert len(hits) == 1, found
    return hits[0]


# ------------------------------------------------------------------------- 1. CSV typed like Parquet


@pytest.fixture(scope="module")
def company_as_csv(company, tmp_path_factory) -> Path:
    """The simulated company of tests/conftest.py written as CSV files (pandas defaults, as an extract would)."""
    folder = tmp_path_factory.mktemp("company_csv")
    for name in TABLES:
        pq.read_table(company.data_dir / f"{name}.parquet").to_pandas().to_csv(
            folder / f"{name}.csv", index=False
        )
    return folder


def test_csv_gives_the_same_feature_table_as_parquet(company, company_as_csv):
    cfg = company.config
    parquet, csv = open_source(company.data_dir), open_source(company_as_csv)
    assert parquet.data_end_date == csv.data_end_date
    # Extra attributes are typed, not left as text: numbers stay numbers, booleans stay booleans.
    assert csv.tables.customers.schema() == parquet.tables.customers.schema()
    as_of = parquet.data_end_date - dt.timedelta(days=30)
    from_parquet = in_customer_order(compute_features(cfg, as_of, parquet))
    from_csv = in_customer_order(compute_features(cfg, as_of, csv))
    # Dtypes and categories included: monthly_fee is a number, loyalty_member has the categories of a boolean.
    pd.testing.assert_frame_equal(from_csv, from_parquet, check_categorical=True, check_exact=True)
    assert from_csv["monthly_fee"].dtype == np.float64
    assert list(from_csv["loyalty_member"].cat.categories) == ["false", "true"]


@pytest.mark.slow
def test_csv_gives_the_same_training_set_as_parquet(company, company_as_csv, tmp_path):
    # The whole labelled training set (every snapshot, labels included), not one as-of date.
    cfg = company.config_in(tmp_path / "p")
    from_parquet = load_or_build_training_set(cfg, source=open_source(company.data_dir), progress=False)
    cfg = company.config_in(tmp_path / "c")
    from_csv = load_or_build_training_set(cfg, source=open_source(company_as_csv), progress=False)
    pd.testing.assert_frame_equal(from_csv.frame, from_parquet.frame, check_exact=True)
    assert from_csv.manifest.categorical_features == from_parquet.manifest.categorical_features


@pytest.mark.slow
def test_training_on_csv_and_on_parquet_gives_identical_scores(company, company_as_csv, tmp_path):
    from churn_pipeline.core.config import LightGBMConfig, ModelConfig
    from churn_pipeline.models.registry import load_model
    from churn_pipeline.stages.train import run_training

    model_cfg = ModelConfig(lightgbm=LightGBMConfig(n_estimators=40, num_leaves=8, min_child_samples=20))
    scores = []
    for name, data in (("parquet", company.data_dir), ("csv", company_as_csv)):
        cfg = company.config_in(tmp_path / name, model=model_cfg)
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"source": data})})
        result = run_training(cfg)
        model, _ = load_model(cfg.tracking_uri, cfg.tracking.registered_model, result.model_version)
        features = in_customer_order(compute_features(cfg))
        scores.append(np.asarray(model.predict(None, features), dtype=np.float64))
    assert len(scores[0]) > 1000
    np.testing.assert_array_equal(scores[1], scores[0])


def test_csv_attribute_value_the_sniffer_did_not_see_is_reported(tmp_path):
    # DuckDB's sniffer reads a sample: a value far down the file that does not fit the sniffed type is
    # counted and named, not turned into a silent null (nor a read error deep in a stage).
    n = 30_000
    frame = pd.DataFrame(
        {
            "customer_id": range(1, n + 1),
            "signup_date": "2024-01-01",
            "churn_date": None,
            "seats": [str(i % 7 + 1) for i in range(n)],
        }
    )
    frame.loc[n - 1, "seats"] = "many"
    frame.to_csv(tmp_path / "customers.csv", index=False)
    msg = one_problem_about(problems(tmp_path), "customers.seats")
    assert "1 of 30,000 rows does not read as BIGINT" in msg and "'many'" in msg


# ------------------------------------------------------------------------- 2. CSV timestamps with offsets


def test_csv_timestamp_offsets_are_converted_to_utc(tmp_path):
    customers().to_csv(tmp_path / "customers.csv", index=False)
    (tmp_path / "events.csv").write_text(
        "customer_id,ts,event_type\n"
        "1,2024-03-01 10:00:00+0530,login\n"
        "1,2024-03-01 10:00:00+05:30,login\n"
        "2,2024-03-01T10:00:00Z,login\n"
        "2,2024-03-01 23:30:00-02:00,login\n"
        "3,2024-03-01 10:00:00,login\n"
    )
    ts = open_source(tmp_path, today=TODAY).tables.events.ts.execute().tolist()
    assert ts == [
        pd.Timestamp("2024-03-01 04:30:00"),
        pd.Timestamp("2024-03-01 04:30:00"),
        pd.Timestamp("2024-03-01 10:00:00"),
        pd.Timestamp("2024-03-02 01:30:00"),  # the next day in UTC: it counts on that day
        pd.Timestamp("2024-03-01 10:00:00"),  # no offset: UTC already
    ]


# ------------------------------------------------------------------------- 3. future dates


def with_future_events(folder: Path, today: dt.date, n: int = 20, years: int = 4) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    customers().to_parquet(folder / "customers.parquet", index=False)
    future = pd.Timestamp(today + dt.timedelta(days=365 * years)) + pd.to_timedelta(range(n), unit="h")
    later = pd.DataFrame({"customer_id": 1, "ts": future, "event_type": "login", "amount": np.nan})
    ev = pd.concat([events(amount=[np.nan, 12.5, np.nan]), later], ignore_index=True)
    ev.to_parquet(folder / "events.parquet", index=False)


def test_future_timestamps_are_an_error_naming_table_column_count_and_examples(tmp_path):
    with_future_events(tmp_path, TODAY)
    msg = one_problem_about(problems(tmp_path), "events.ts")
    assert "20 of 23 rows is dated after 2024-06-02" in msg
    assert "2028-05-31" in msg  # an example
    assert "data.max_future_days" in msg and "pass --as-of" in msg  # the fix


def test_future_dates_of_customers_are_an_error(tmp_path):
    customers(churn_date=[None, dt.date(2024, 5, 1), dt.date(2030, 1, 1)]).to_parquet(
        tmp_path / "customers.parquet", index=False
    )
    msg = one_problem_about(problems(tmp_path), "customers.churn_date")
    assert "1 of 3 rows is dated after 2024-06-02" in msg and "2030-01-01" in msg


def test_future_tolerance_and_a_later_as_of_come_from_the_caller(tmp_path):
    with_future_events(tmp_path, TODAY, years=0)  # 20 events from TODAY 00:00 on, the last at 19:00
    assert open_source(tmp_path, today=TODAY).report.problems == []  # within the default day
    with_future_events(tmp_path, TODAY + dt.timedelta(days=3), years=0)
    assert "events.ts" in problems(tmp_path)[0]
    assert open_source(tmp_path, today=TODAY, cfg=DataConfig(max_future_days=4)).report.problems == []
    # A replayed period: an as-of later than today moves the reference date; an earlier one does not.
    assert open_source(tmp_path, today=TODAY, as_of=TODAY + dt.timedelta(days=3)).report.problems == []
    assert "events.ts" in problems(tmp_path, as_of=TODAY - dt.timedelta(days=30))[0]


def test_validate_without_as_of_reports_future_events_exit_3(tmp_path):
    with_future_events(tmp_path, utc_today())
    result = runner.invoke(app, ["validate", "--data", str(tmp_path)])
    assert result.exit_code == 3, result.output
    assert "events.ts: 20 of 23 rows is dated after" in result.output


def test_features_without_as_of_do_not_take_the_future_date_as_as_of(tmp_path):
    # Before: the as-of silently became the future date and every customer looked inactive.
    with_future_events(tmp_path / "data", utc_today())
    result = runner.invoke(app, ["features", "--data", str(tmp_path / "data"), "--out", str(tmp_path)])
    assert result.exit_code == 3, result.output
    assert "events.ts: 20 of 23 rows is dated after" in result.output
    assert not (tmp_path / "features").exists()  # nothing written


def test_features_with_a_past_as_of_still_report_future_events(tmp_path):
    with_future_events(tmp_path / "data", utc_today())
    args = ["features", "--data", str(tmp_path / "data"), "--out", str(tmp_path), "--as-of", "2024-04-30"]
    result = runner.invoke(app, args)
    assert result.exit_code == 3, result.output
    assert "events.ts: 20 of 23 rows is dated after" in result.output


def test_validate_with_a_later_as_of_accepts_a_replayed_period(tmp_path):
    with_future_events(tmp_path, utc_today())
    later = (utc_today() + dt.timedelta(days=5 * 365)).isoformat()
    result = runner.invoke(app, ["validate", "--data", str(tmp_path), "--as-of", later])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["validate", "--data", str(tmp_path), "--as-of", "2024-05-01"])
    assert result.exit_code == 3 and "events.ts" in result.output


# ------------------------------------------------------------------------- 4. non-finite numbers


def test_infinite_and_nan_amounts_in_parquet_are_errors(tmp_path):
    customers().to_parquet(tmp_path / "customers.parquet", index=False)
    # pyarrow keeps NaN apart from null when told to (Spark and polars writers do so by default).
    amounts = pa.array([np.inf, 12.5, np.nan], from_pandas=False)
    ev = pa.Table.from_pandas(events().drop(columns="amount"), preserve_index=False).append_column(
        "amount", amounts
    )
    pq.write_table(ev, tmp_path / "events.parquet")
    payments(amount=[20.0, -np.inf]).to_parquet(tmp_path / "payments.parquet", index=False)
    found = problems(tmp_path)
    msg = one_problem_about(found, "events.amount")
    assert "2 of 3 rows is not a finite number (inf or NaN)" in msg and "inf" in msg and "nan" in msg
    msg = one_problem_about(found, "payments.amount")
    assert "1 of 2 rows is not a finite number" in msg and "-inf" in msg


def test_non_finite_text_in_csv_is_an_error(tmp_path):
    customers(monthly_fee=[10.0, "Infinity", 30.0]).to_csv(tmp_path / "customers.csv", index=False)
    events(amount=["inf", "NaN", "-Infinity"]).to_csv(tmp_path / "events.csv", index=False)
    surveys(nps=["inf", 3]).to_csv(tmp_path / "surveys.csv", index=False)  # used to crash the int cast
    found = problems(tmp_path)
    msg = one_problem_about(found, "events.amount")
    assert "3 of 3 rows is not a finite number (inf or NaN)" in msg
    assert "'inf'" in msg and "'NaN'" in msg and "'-Infinity'" in msg
    assert "surveys.nps: 1 of 2 rows is not a whole number (e.g. 'inf')" in one_problem_about(
        found, "surveys.nps"
    )
    # An attribute feature: inf would have failed deep inside feature building with a NULLIF message.
    assert "1 of 3 rows is not a finite number" in one_problem_about(found, "customers.monthly_fee")


# ------------------------------------------------------------------------- 5. exact duplicate rows


def many_events(n: int, repeated: int) -> pd.DataFrame:
    ev = pd.DataFrame(
        {
            "customer_id": np.arange(n) % 3 + 1,
            "ts": pd.Timestamp("2024-04-01") + pd.to_timedelta(np.arange(n), unit="min"),
            "event_type": "login",
            "amount": np.where(np.arange(n) % 2 == 0, 5.0, np.nan),
        }
    )
    return pd.concat([ev, ev.iloc[:repeated]], ignore_index=True)


def test_duplicate_rows_above_the_share_are_an_error(tmp_path):
    customers().to_parquet(tmp_path / "customers.parquet", index=False)
    many_events(190, repeated=10).to_parquet(tmp_path / "events.parquet", index=False)  # 10 of 200 = 5%
    msg = one_problem_about(problems(tmp_path), "events")
    assert msg.startswith(
        "events (all columns equal: customer_id, ts, event_type, amount): 10 of 200 rows (5.00%)"
    )
    assert "customer_id 1, ts 2024-04-01 00:00:00" in msg  # an example
    assert "data.duplicate_rows_error_share" in msg and "drop the repeated rows" in msg


def test_duplicate_rows_below_the_share_are_a_warning(tmp_path, caplog):
    customers().to_parquet(tmp_path / "customers.parquet", index=False)
    many_events(199, repeated=1).to_parquet(tmp_path / "events.parquet", index=False)  # 1 of 200 = 0.5%
    with caplog.at_level("WARNING", logger="churn_pipeline.data.io"):
        source = open_source(tmp_path, today=TODAY)
    assert "1 of 200 rows (0.50%) repeat another row" in caplog.text  # what a stage shows
    assert source.report.problems == []
    assert len(source.report.warnings) == 1
    assert source.report.warnings[0].startswith(
        "events (all columns equal: customer_id, ts, event_type, amount)"
    )
    assert "1 of 200 rows (0.50%)" in source.report.warnings[0]
    # The share is configurable; `churn validate` prints the warning and passes.
    assert "events (all columns" in problems(tmp_path, cfg=DataConfig(duplicate_rows_error_share=0.001))[0]
    result = runner.invoke(app, ["validate", "--data", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "1 of 200 rows (0.50%) repeat another row" in result.output


def daily_purchases(days: int, per_day: int) -> pd.DataFrame:
    """A purchase log kept by date (no time of day): `per_day` distinct purchases a day."""
    i = np.arange(days * per_day)
    return pd.DataFrame(
        {
            "customer_id": i % 3 + 1,
            "ts": pd.Timestamp("2024-03-01") + pd.to_timedelta(i // per_day, unit="D"),
            "event_type": "purchase",
            "amount": 10.0 + i,
        }
    )


def test_date_only_logs_keep_scattered_same_day_repeats_and_fail_a_day_loaded_twice(tmp_path):
    customers().to_parquet(tmp_path / "customers.parquet", index=False)
    log = daily_purchases(days=20, per_day=10)  # 200 rows
    # 6 identical second purchases on 6 different days (3%): no column tells them from a double record
    scattered = pd.concat([log, log.iloc[[3, 25, 47, 88, 120, 161]]], ignore_index=True)
    scattered.to_parquet(tmp_path / "events.parquet", index=False)
    source = open_source(tmp_path, today=TODAY)
    assert source.report.problems == []
    (warning,) = source.report.warnings
    assert "6 of 206 rows (2.91%) repeat another row" in warning and "no time of day" in warning
    assert "0 rows in days repeated whole" in warning
    # one whole day loaded twice (10 of 210 rows, 4.8%): a batch loaded again, an error
    reloaded = pd.concat([log, log.iloc[50:60]], ignore_index=True)
    reloaded.to_parquet(tmp_path / "events.parquet", index=False)
    msg = one_problem_about(problems(tmp_path), "events")
    assert "10 of 210 rows (4.76%) repeat another row" in msg and "drop the repeated rows" in msg
    # the same scattered repeats with a time of day on one row: the time tells real rows apart, an error
    timed = scattered.copy()
    timed.loc[0, "ts"] = timed.loc[0, "ts"] + pd.Timedelta(hours=9)
    timed.to_parquet(tmp_path / "events.parquet", index=False)
    assert "drop the repeated rows" in one_problem_about(problems(tmp_path), "events")


def test_duplicates_are_checked_in_every_child_table_and_none_is_nothing():
    frames = {
        "customers": customers(),
        "events": many_events(200, repeated=0),
        "surveys": pd.concat([surveys()] * 2, ignore_index=True),
        "payments": pd.concat([payments()] * 2, ignore_index=True),
    }
    with pytest.raises(DataValidationError) as info:
        source_from_frames(frames, today=TODAY)
    found = info.value.problems
    assert len(found) == 2, found
    assert one_problem_about(found, "surveys (all columns equal: customer_id, ts, nps): 2 of 4 rows")
    assert one_problem_about(found, "payments (all columns equal: customer_id, ts, amount, status): 2 of 4")
    clean = source_from_frames(
        {"customers": customers(), "events": many_events(200, repeated=0)}, today=TODAY
    )
    assert clean.report.warnings == [] and clean.report.problems == []


def test_nightly_scoring_checks_duplicates_within_its_longest_window_only(tmp_path):
    # one event a day for 200 days; the 10 oldest are repeated (5%: an error for the whole history) and one
    # of the last 30 days' (1 of 31 rows in that window: 3.2%, also above the 1% share)
    ev = pd.DataFrame(
        {
            "customer_id": np.arange(200) % 3 + 1,
            "ts": pd.Timestamp("2024-01-01 12:00") + pd.to_timedelta(np.arange(200), unit="D"),
            "event_type": "login",
            "amount": np.nan,
        }
    )
    customers().to_parquet(tmp_path / "customers.parquet", index=False)
    pd.concat([ev, ev.iloc[:10], ev.iloc[[195]]], ignore_index=True).to_parquet(
        tmp_path / "events.parquet", index=False
    )
    whole = one_problem_about(problems(tmp_path, today=dt.date(2024, 8, 1)), "events")
    assert ": 11 of 211 rows (5.21%)" in whole
    windowed = problems(tmp_path, today=dt.date(2024, 8, 1), duplicates_window_days=30)
    assert ": 1 of the last 30 days' 31 rows (3.23%)" in one_problem_about(windowed, "events")
    # without the recent repeat, the old ones are outside the window: nothing to report there
    pd.concat([ev, ev.iloc[:10]], ignore_index=True).to_parquet(tmp_path / "events.parquet", index=False)
    assert open_source(tmp_path, today=dt.date(2024, 8, 1), duplicates_window_days=30).report.warnings == []
    # below the share, the nightly check counts by hash and leaves the examples to `churn validate`
    pd.concat([ev, ev.iloc[[195]]], ignore_index=True).to_parquet(tmp_path / "events.parquet", index=False)
    loose = DataConfig(duplicate_rows_error_share=0.05)
    (warning,) = open_source(
        tmp_path, today=dt.date(2024, 8, 1), cfg=loose, duplicates_window_days=30
    ).report.warnings
    assert warning.startswith(
        "events (all columns equal: customer_id, ts, event_type, amount): 1 of the last"
    )
    assert "counted by row hash" in warning and "e.g." not in warning
