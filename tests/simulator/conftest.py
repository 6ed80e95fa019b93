"""The simulated company of tests/conftest.py (3,000 customers x 12 months, seed 11), loaded as frames."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest


@dataclass(frozen=True)
class CompanyFrames:
    data_dir: Path
    truth_dir: Path
    customers: pd.DataFrame
    events: pd.DataFrame
    support_contacts: pd.DataFrame
    surveys: pd.DataFrame
    payments: pd.DataFrame
    hazard: pd.DataFrame
    truth_customers: pd.DataFrame
    meta: dict


@pytest.fixture(scope="session")
def frames(company) -> CompanyFrames:
    def read(path: Path) -> pd.DataFrame:
        return pq.read_table(path).to_pandas()

    d, t = company.data_dir, company.truth_dir
    return CompanyFrames(
        data_dir=d,
        truth_dir=t,
        **{
            name: read(d / f"{name}.parquet")
            for name in ("customers", "events", "support_contacts", "surveys", "payments")
        },
        hazard=read(t / "hazard.parquet"),
        truth_customers=read(t / "customers.parquet"),
        meta=json.loads((t / "truth.json").read_text()),
    )
