"""simulation.contract and simulation.noise: a non-contractual company and added noise, each compared with the
same company simulated without the setting (same seed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from churn_pipeline.core.config import NoiseConfig, SimulationConfig
from churn_pipeline.data.io import open_source
from churn_pipeline.simulator.company import PLANS, simulate_company

BASE = SimulationConfig(customers=3_000, months=6, seed=13, chunk_customers=1_000)


def read(folder: Path, name: str) -> pd.DataFrame:
    return pq.read_table(folder / f"{name}.parquet").to_pandas()


@pytest.fixture(scope="module")
def companies(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("settings")
    configs = {
        "plain": BASE,
        "non_contractual": BASE.model_copy(update={"contract": "non_contractual"}),
        "flips": BASE.model_copy(update={"noise": NoiseConfig(label_flip_pct=20)}),
        "attributes": BASE.model_copy(
            update={"noise": NoiseConfig(attribute_noise_pct=30, irrelevant_attributes=3)}
        ),
    }
    for name, cfg in configs.items():
        simulate_company(cfg, root / name, root / f"{name}_truth")
    return {name: root / name for name in configs}


def truth(companies: dict[str, Path], name: str) -> pd.DataFrame:
    return read(companies[name].with_name(f"{name}_truth"), "customers")


# ------------------------------------------------------------------------------------- non-contractual


def test_non_contractual_writes_no_churn_date_and_no_payments(companies):
    folder = companies["non_contractual"]
    customers = read(folder, "customers")
    assert customers["churn_date"].isna().all()
    assert not (folder / "payments.parquet").exists()
    assert "membership" in customers and "contract" not in customers
    assert open_source(folder).report.problems == []
    # The latent dropouts happened (the truth keeps them), at the subscription company's churn rate.
    dropped = truth(companies, "non_contractual")["churn_date"]
    assert dropped.notna().mean() == pytest.approx(
        read(companies["plain"], "customers")["churn_date"].notna().mean()
    )


def test_non_contractual_events_stop_at_the_latent_dropout(companies):
    folder = companies["non_contractual"]
    dropout = truth(companies, "non_contractual").set_index("customer_id")["churn_date"]
    for table in ("events", "support_contacts", "surveys"):
        rows = read(folder, table)
        day = pd.to_datetime(dropout.reindex(rows["customer_id"]).to_numpy())
        after = rows["ts"].to_numpy() >= day.to_numpy()
        assert not after[~pd.isna(day)].any(), table
    # Dropped-out customers did have events before they went silent.
    events = read(folder, "events")
    dropped_ids = dropout.index[dropout.notna()]
    assert events["customer_id"].isin(dropped_ids).sum() > 0


def test_non_contractual_is_the_same_company_written_differently(companies):
    plain, nc = companies["plain"], companies["non_contractual"]
    assert read(nc, "events").equals(read(plain, "events"))
    assert truth(companies, "non_contractual")["churn_date"].equals(read(plain, "customers")["churn_date"])


# ------------------------------------------------------------------------------------------------ noise


def test_label_flips_change_exactly_the_flipped_customers_within_tolerance(companies):
    plain = read(companies["plain"], "customers").set_index("customer_id")["churn_date"]
    flips = read(companies["flips"], "customers").set_index("customer_id")["churn_date"]
    flipped = truth(companies, "flips").set_index("customer_id")["label_flipped"].to_numpy()
    was, now = plain.notna().to_numpy(), flips.notna().to_numpy()
    np.testing.assert_array_equal(was != now, flipped)
    assert flipped.mean() == pytest.approx(0.20, abs=0.03)
    # Churners among the flipped lose their date, non-churners gain one; everyone else keeps theirs.
    assert (was & flipped).sum() > 0 and (~was & flipped).sum() > 0
    assert plain[~flipped].equals(flips[~flipped])


def test_label_flips_keep_rows_inside_the_written_customer_time(companies):
    folder = companies["flips"]
    assert open_source(folder).report.problems == []
    churn = read(folder, "customers").set_index("customer_id")["churn_date"]
    for table in ("events", "support_contacts", "surveys", "payments"):
        rows = read(folder, table)
        day = pd.to_datetime(churn.reindex(rows["customer_id"]).to_numpy())
        after = rows["ts"].to_numpy() >= day.to_numpy()
        assert not after[~pd.isna(day)].any(), table


def test_attribute_noise_replaces_the_configured_share(companies):
    plain = read(companies["plain"], "customers")
    noisy = read(companies["attributes"], "customers")
    # Behaviour and dates are untouched: the same company under the noise.
    assert read(companies["attributes"], "events").equals(read(companies["plain"], "events"))
    assert noisy["churn_date"].equals(plain["churn_date"])
    # A replaced value differs from the true one with probability 1 - sum(share^2) for a categorical.
    shares = plain["plan"].astype(str).value_counts(normalize=True).reindex(list(PLANS)).to_numpy()
    expected = 0.30 * (1 - np.sum(shares**2))
    changed = (noisy["plan"].astype(str) != plain["plan"].astype(str)).mean()
    assert changed == pytest.approx(expected, abs=0.03)
    fee_changed = (noisy["monthly_fee"] != plain["monthly_fee"]).mean()
    assert fee_changed == pytest.approx(0.30, abs=0.03)


def test_irrelevant_attributes_are_numbers_and_categories_without_signal(companies):
    noisy = read(companies["attributes"], "customers")
    assert [c for c in noisy if c.startswith("noise_")] == ["noise_1", "noise_2", "noise_3"]
    assert pd.api.types.is_float_dtype(noisy["noise_1"]) and pd.api.types.is_float_dtype(noisy["noise_3"])
    assert set(noisy["noise_2"].astype(str)) == {"a", "b", "c", "d"}
    churned = noisy["churn_date"].notna()
    assert abs(np.corrcoef(noisy["noise_1"], churned)[0, 1]) < 0.08


def test_label_flips_need_a_contract():
    with pytest.raises(ValidationError, match="label_flip_pct"):
        SimulationConfig(contract="non_contractual", noise={"label_flip_pct": 5})
    with pytest.raises(ValidationError, match="label_flip_pct"):
        SimulationConfig(noise={"label_flip_pct": 101})
