"""Data sources on disk (Parquet, CSV, Parquet parts, DuckDB) and atomic writers."""

from __future__ import annotations

import datetime as dt
import json
import os

import duckdb
import pandas as pd
import pytest

from churn_pipeline.core.errors import ConfigError, DataValidationError
from churn_pipeline.data.io import atomic_directory, atomic_write_json, atomic_write_parquet, open_source
from tests.pipeline.test_contract import customers, events


def write(folder, name, df, fmt):
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        df.to_parquet(folder / f"{name}.parquet", index=False)
    else:
        df.to_csv(folder / f"{name}.csv", index=False)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_folder_source(tmp_path, fmt):
    write(tmp_path, "customers", customers(), fmt)
    write(tmp_path, "events", events(), fmt)
    source = open_source(tmp_path)
    assert source.tables.present() == ["customers", "events"]
    assert source.tables.events.ts.type().is_timestamp()
    assert source.tables.customers.signup_date.type().is_date()
    assert source.tables.customers.customer_id.type().is_integer()
    assert source.data_end_date == dt.date(2024, 5, 1)
    # Extra customer columns pass through for the attribute features.
    assert "plan" in source.tables.customers.columns


def test_csv_with_a_bad_date_is_reported_not_crashed(tmp_path):
    (tmp_path / "customers.csv").write_text(
        "customer_id,signup_date,churn_date\n1,2024-01-01,\n2,2024-02-30,\n3,2024-03-01,2024-04-01\n"
    )
    with pytest.raises(
        DataValidationError,
        match=r"customers.signup_date: 1 of 3 rows is not a parseable date \(e.g. '2024-02-30'\)",
    ):
        open_source(tmp_path)


def test_csv_timestamp_with_a_malformed_offset_is_reported(tmp_path):
    # Offsets go through a TIMESTAMPTZ cast (tests/pipeline/test_hostile_data.py): one it cannot read is
    # still counted and named, not dropped.
    write(tmp_path, "customers", customers(), "csv")
    (tmp_path / "events.csv").write_text(
        "customer_id,ts,event_type\n1,2024-03-01 10:00:00+05:30,login\n1,2024-03-01 10:00:00+05:3x,login\n"
    )
    with pytest.raises(
        DataValidationError,
        match=r"events.ts: 1 of 2 rows is not a parseable timestamp \(e.g. '2024-03-01 10:00:00\+05:3x'\)",
    ):
        open_source(tmp_path)


def test_csv_extra_columns_take_the_sniffed_types(tmp_path):
    (tmp_path / "customers.csv").write_text(
        "customer_id,signup_date,churn_date,fee,seats,loyal,first_login\n"
        "1,2024-01-01,,9.5,2,True,2024-01-01 10:00:00+05:30\n"
        "2,2024-01-02,,12,1,false,2024-01-02T10:00:00Z\n"
    )
    customers = open_source(tmp_path).tables.customers
    schema = customers.schema()
    assert schema["fee"].is_floating() and schema["seats"].is_integer() and schema["loyal"].is_boolean()
    # Zoned timestamps outside the contract are UTC without zone too, like `ts`.
    assert schema["first_login"].is_timestamp() and schema["first_login"].timezone is None
    assert customers.first_login.execute().tolist() == [
        pd.Timestamp("2024-01-01 04:30:00"),
        pd.Timestamp("2024-01-02 10:00:00"),
    ]


def test_parquet_parts_folder(tmp_path):
    write(tmp_path, "customers", customers(), "parquet")
    parts = tmp_path / "events"
    parts.mkdir()
    ev = events()
    ev.iloc[:2].to_parquet(parts / "part-0.parquet", index=False)
    ev.iloc[2:].to_parquet(parts / "part-1.parquet", index=False)
    source = open_source(tmp_path)
    assert source.tables.events.count().execute() == 3


def test_duckdb_file_source(tmp_path):
    db = tmp_path / "company.duckdb"
    con = duckdb.connect(str(db))
    cust, ev = customers(), events()  # noqa: F841 (referenced by name in SQL)
    con.execute("CREATE TABLE customers AS SELECT * FROM cust")
    con.execute("CREATE TABLE events AS SELECT * FROM ev")
    con.close()
    source = open_source(db)
    assert source.tables.present() == ["customers", "events"]
    assert source.tables.customers.count().execute() == 3


def test_table_given_twice_is_an_error(tmp_path):
    write(tmp_path, "customers", customers(), "parquet")
    write(tmp_path, "customers", customers(), "csv")
    with pytest.raises(ConfigError, match="table customers is given more than once"):
        open_source(tmp_path)


def test_missing_source_and_missing_customers(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        open_source(tmp_path / "nope")
    write(tmp_path, "events", events(), "parquet")
    with pytest.raises(ConfigError, match="has no customers table"):
        open_source(tmp_path)


def test_fingerprint_follows_content(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        write(folder, "customers", customers(), "parquet")
    assert open_source(a).fingerprint == open_source(b).fingerprint
    write(b, "customers", customers(plan=["basic", "basic", "basic"]), "parquet")
    assert open_source(a).fingerprint != open_source(b).fingerprint


def test_atomic_writers(tmp_path):
    target = tmp_path / "out" / "x.parquet"
    atomic_write_parquet(pd.DataFrame({"a": [1, 2]}), target)
    assert pd.read_parquet(target)["a"].tolist() == [1, 2]
    atomic_write_json({"d": dt.date(2024, 1, 2)}, tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == {"d": "2024-01-02"}
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["x.parquet"]  # no temp files left


def test_atomic_directory_keeps_old_content_on_failure(tmp_path):
    final = tmp_path / "scores"
    with atomic_directory(final) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(final) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("crash mid-write")
    assert (final / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores"]
    with atomic_directory(final) as tmp:
        (tmp / "b.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["b.txt"]


def test_atomic_outputs_are_not_private(tmp_path):
    # Temp files are created 0600; a published output must be readable like any normally written file.
    atomic_write_json({"a": 1}, tmp_path / "m.json")
    with atomic_directory(tmp_path / "d") as tmp:
        (tmp / "x").write_text("x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~mask


def test_all_null_column_in_parquet(tmp_path):
    write(tmp_path, "customers", customers(churn_date=[None, None, None]), "parquet")
    source = open_source(tmp_path)
    assert source.tables.customers.churn_date.type().is_date()
