"""`churn kpis`: the stage's files, its churn and retention rates against a pandas count straight from the
customers table of a simulated company, and the command."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from churn_pipeline.cli import app
from churn_pipeline.core.artifacts import KPIS_CSV_FILE, KPIS_FILE, kpis_dir
from churn_pipeline.core.config import KpiConfig
from churn_pipeline.features.kpis import KPI_COLUMNS
from churn_pipeline.stages.kpis import kpis_csv_text, write_kpis

runner = CliRunner()


def rates_from_customers(
    customers: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp
) -> tuple[float, float]:
    """Churn and retention rate (percent) of [start, end) counted directly: at start = signed up before start
    and not churned before it; at end likewise for end; new = signed up in it; lost = churned in it."""
    signup, churn = customers["signup_date"], customers["churn_date"]
    at_start = ((signup < start) & (churn.isna() | (churn >= start))).sum()
    at_end = ((signup < end) & (churn.isna() | (churn >= end))).sum()
    new = ((signup >= start) & (signup < end)).sum()
    lost = ((churn >= start) & (churn < end)).sum()
    return 100 * lost / at_start, 100 * (at_end - new) / at_start


@pytest.fixture(scope="module")
def published(company, tmp_path_factory):
    cfg = company.config_in(
        tmp_path_factory.mktemp("kpis-work"), kpis=KpiConfig(segments=("plan",), periods=6)
    )
    return cfg, write_kpis(cfg)


def test_files_hold_the_returned_frame(published):
    cfg, result = published
    assert result.parquet_path == kpis_dir(cfg.workdir) / KPIS_FILE
    assert result.csv_path == kpis_dir(cfg.workdir) / KPIS_CSV_FILE
    on_disk = pd.read_parquet(result.parquet_path)
    assert tuple(on_disk.columns) == KPI_COLUMNS
    pd.testing.assert_frame_equal(on_disk, result.frame, check_dtype=False)
    csv = pd.read_csv(result.csv_path)
    assert len(csv) == len(on_disk) and tuple(csv.columns) == KPI_COLUMNS
    assert len(result.periods) == 6
    assert sorted(result.frame["period_start"].unique()) == [p.start for p in result.periods]
    assert result.periods[-1].end <= result.data_end_date + pd.Timedelta(days=1)
    assert not [
        p.name for p in kpis_dir(cfg.workdir).iterdir() if p.name.startswith(".")
    ]  # no temp leftovers


def test_churn_and_retention_match_a_count_from_the_customers_table(published, company):
    _, result = published
    customers = pd.read_parquet(company.data_dir / "customers.parquet")
    for c in ("signup_date", "churn_date"):
        customers[c] = pd.to_datetime(customers[c])
    checked = 0
    for _, r in result.frame.iterrows():
        rows = (
            customers
            if r.segment == "all"
            else customers[customers[r.segment].astype(str) == r.segment_value]
        )
        churn, retention = rates_from_customers(
            rows, pd.Timestamp(r.period_start), pd.Timestamp(r.period_end)
        )
        assert r.churn_rate_pct == pytest.approx(churn), (r.period_start, r.segment_value)
        assert r.retention_rate_pct == pytest.approx(retention), (r.period_start, r.segment_value)
        checked += 1
    assert checked == 6 * (1 + customers["plan"].nunique())
    assert (result.overall()["lost_customers"] > 0).all()  # the comparison covers real churn


def run_kpis(company, tmp_path, config_yaml: str):
    """`churn kpis` on the test company with a config of `config_yaml`, into tmp_path/work: (result, workdir)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(config_yaml)
    out = tmp_path / "work"
    args = ["kpis", "--config", str(cfg), "--data", str(company.data_dir), "--out", str(out)]
    return runner.invoke(app, args), out


def test_command_writes_and_prints_the_latest_periods(company, tmp_path):
    result, out = run_kpis(company, tmp_path, "kpis:\n  period: week\n  periods: 4\n  segments: [region]\n")
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(kpis_dir(out) / KPIS_FILE)
    weeks = sorted(frame["period_start"].unique())
    assert len(weeks) == 4 and all(w.weekday() == 0 for w in weeks)
    assert "KPIs per week" in result.output and "region=" in result.output
    assert str(weeks[-1]) in result.output


def test_command_names_an_unknown_segment_and_exits_2(company, tmp_path):
    result, out = run_kpis(company, tmp_path, "kpis:\n  segments: [colour]\n")
    assert result.exit_code == 2
    assert "kpis.segments" in result.output and "colour" in result.output
    assert not (kpis_dir(out) / KPIS_FILE).exists()


def test_csv_keeps_money_and_neutralises_formulas_in_segment_values():
    frame = pd.DataFrame(
        {
            "segment": ["all", "plan"],
            "segment_value": ["all", "=HYPERLINK(1)"],
            "revenue_start": [1234567.891, None],
        }
    )
    lines = kpis_csv_text(frame).splitlines()
    assert lines == ["segment,segment_value,revenue_start", "all,all,1234567.891", "plan,'=HYPERLINK(1),"]
