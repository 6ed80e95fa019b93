"""`churn report` in a real browser: Debian's Chromium (installed by `.ci/run`) driven by Playwright opens the
page from a file:// URL with no network, logs no console or page error, draws every chart with a size and
content, and screenshots to a non-trivial PNG. Skipped locally without Chromium; failed when `CI` is set."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # scores the trained company and starts a browser

CHROMIUM = Path("/usr/bin/chromium")


def _missing(what: str) -> None:
    message = f"{what}: install Debian's chromium (apt-get install chromium, as .ci/run does) and playwright"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def report(trained, company, tmp_path_factory) -> Path:
    """The report of a list scored 40 days before the data ends whose groups were then run as a campaign, so
    every section, campaign results included, has figures."""
    import datetime as dt

    import pandas as pd

    from churn_pipeline.stages.report import run_report
    from churn_pipeline.stages.score import run_scoring

    cfg, _ = trained
    root = tmp_path_factory.mktemp("report-work")
    shutil.copytree(company.data_dir, root / "data")
    tracking = cfg.tracking.model_copy(update={"uri": cfg.tracking_uri})
    data = cfg.data.model_copy(update={"source": root / "data"})
    cfg = cfg.model_copy(update={"workdir": root / "work", "tracking": tracking, "data": data})
    end = pd.to_datetime(pd.read_parquet(root / "data" / "events.parquet", columns=["ts"]).ts).max().date()
    as_of = end - dt.timedelta(days=40)
    listed = run_scoring(cfg, as_of).at_risk
    pd.DataFrame(
        {
            "customer_id": listed.customer_id,
            "ts": pd.Timestamp(as_of + dt.timedelta(days=1)) + pd.Timedelta(hours=10),
            "campaign_id": f"list-{as_of}",
            "group": listed.group,
            "risk_tier": listed.risk_tier,
        }
    ).to_parquet(root / "data" / "campaigns.parquet", index=False)
    return run_report(cfg, as_of).path


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_report_renders_in_chromium_without_errors_and_with_every_chart_drawn(report, tmp_path):
    executable = CHROMIUM if CHROMIUM.is_file() else shutil.which("chromium")
    if executable is None:
        _missing(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (the dev extra)")

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(executable), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on(
                "console",
                lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.resolve().as_uri(), wait_until="load")
            sections = page.eval_on_selector_all("section", "els => els.map(e => e.id)")
            charts = page.eval_on_selector_all(
                "section svg, section img",
                """els => els.map(e => {
                    const box = e.getBoundingClientRect();
                    const drawn = e.tagName === 'IMG'
                        ? (e.complete && e.naturalWidth > 0 && e.naturalHeight > 0)
                        : e.querySelectorAll('path, rect, line, polyline, use').length > 0;
                    return {section: e.closest('section').id, tag: e.tagName, width: box.width,
                            height: box.height, drawn: drawn};
                })""",
            )
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    assert errors == []
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []  # nothing fetched from outside
    assert sections == ["kpis", "at_risk", "model", "drift", "campaigns"]
    assert {c["section"] for c in charts} == {"kpis", "at_risk", "model", "drift", "campaigns"}  # all filled
    empty = [c for c in charts if not (c["drawn"] and c["width"] > 50 and c["height"] > 50)]
    assert empty == [], empty
    assert sum(c["tag"] == "IMG" for c in charts) == 2  # the model run's gains/lift and calibration plots

    data = shot.read_bytes()
    width, height = _png_size(data)
    assert width == 1280 and height > 2000  # the full page, every section below the first screen
    assert len(data) > 100_000
    from PIL import Image

    with Image.open(shot) as image:
        colours = image.convert("RGB").resize((320, height // 4)).getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50  # drawn charts and text, not a blank page
