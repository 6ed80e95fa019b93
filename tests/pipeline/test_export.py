"""Exports of a published at-risk list: csv/jsonl files, and the webhook against a real local HTTP server."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churn_pipeline.cli import app
from churn_pipeline.core.artifacts import AT_RISK_COLUMNS, AT_RISK_FILE, WEBHOOK_LEDGER_FILE, score_dir
from churn_pipeline.core.config import Config, PostgresConfig
from churn_pipeline.core.errors import ConfigError, ExportError, OutputMissingError
from churn_pipeline.data.io import atomic_write_parquet
from churn_pipeline.stages.export import TARGETS, run_export
from churn_pipeline.stages.export.files import CRM_COLUMNS
from churn_pipeline.stages.export.target import Delivery, ExportTarget, IncompleteExport, register
from churn_pipeline.stages.score import date_column

AS_OF = dt.date(2025, 3, 31)


def make_at_risk(n: int, as_of: dt.date = AS_OF, seed: int = 0, version: str = "1") -> pd.DataFrame:
    """A synthetic at-risk list in the published layout (ids C0000.., probabilities descending)."""
    rng = np.random.default_rng(seed)
    p = np.sort(rng.uniform(0.05, 0.95, n))[::-1]
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "churn_probability": p,
            "risk_tier": np.where(np.arange(n) < n // 4, "critical", "elevated"),
            "group": np.where(np.arange(n) % 10 == 3, "control", "treatment"),
            "expected_value_at_risk": p * 600.0,
            "uplift": np.linspace(0.2, 0.01, n),
            "expected_saved_value": np.linspace(0.2, 0.01, n) * 600.0,
            "reason_1": ["3 complaints in the last 30 days, 1 still open"] * n,
            "reason_2": ["no activity for 21 days"] * n,
            "reason_3": [None] * n,
            "suggested_action": ["Priority support callback"] * n,
            "rank": np.arange(1, n + 1),
            "as_of": date_column(as_of, n),
            "model_version": version,
        }
    )[list(AT_RISK_COLUMNS)]


def publish(cfg: Config, frame: pd.DataFrame, as_of: dt.date = AS_OF) -> None:
    atomic_write_parquet(frame, score_dir(cfg.workdir, as_of) / AT_RISK_FILE)


# ----------------------------------------------------------------------------------------------- files


def test_csv_export_has_crm_layout_and_the_published_rows(tmp_path):
    cfg = Config(workdir=tmp_path / "work")
    frame = make_at_risk(7)
    frame.loc[0, "reason_1"] = 'Beschwerde "offen", 2 Tage'  # quotes, comma and non-ASCII survive
    publish(cfg, frame)

    result = run_export(cfg, AS_OF, "csv")

    path = tmp_path / "work" / "exports" / f"at_risk_{AS_OF}.csv"
    assert result.destination == str(path) and result.records == 7 == result.delivered
    rows = list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8"))))
    assert list(rows[0].keys()) == list(CRM_COLUMNS)
    assert [r["customer_id"] for r in rows] == frame["customer_id"].tolist()
    assert rows[0]["reason_1"] == 'Beschwerde "offen", 2 Tage'
    assert rows[0]["as_of"] == AS_OF.isoformat()
    assert float(rows[3]["churn_probability"]) == pytest.approx(frame["churn_probability"].iloc[3], abs=1e-6)
    assert rows[0]["reason_3"] == ""
    assert [r["group"] for r in rows] == frame["group"].tolist()  # the CRM sees whom to leave alone
    assert not list(path.parent.glob(".*tmp")), "no temp files left behind"
    assert float(rows[1]["expected_saved_value"]) == pytest.approx(
        frame["expected_saved_value"].iloc[1], abs=0.01
    )


def test_a_list_published_before_saved_value_ranking_exports_with_those_columns_empty(tmp_path):
    cfg = Config(workdir=tmp_path / "work")
    publish(cfg, make_at_risk(3).drop(columns=["uplift", "expected_saved_value"]))
    run_export(cfg, AS_OF, "csv")
    rows = list(
        csv.DictReader(io.StringIO((tmp_path / "work" / "exports" / f"at_risk_{AS_OF}.csv").read_text()))
    )
    assert list(rows[0].keys()) == list(CRM_COLUMNS) and len(rows) == 3
    assert {r["uplift"] for r in rows} == {""} == {r["expected_saved_value"] for r in rows}
    publish(cfg, make_at_risk(3).drop(columns=["group"]))
    with pytest.raises(ValueError, match=r"lacks columns \['group'\]"):
        run_export(cfg, AS_OF, "csv")


def test_jsonl_export_one_object_per_customer(tmp_path):
    cfg = Config(workdir=tmp_path / "work", export={"out_dir": tmp_path / "crm"})
    frame = make_at_risk(5)
    publish(cfg, frame)

    run_export(cfg, None, "jsonl")  # None = the latest published date

    lines = (tmp_path / "crm" / f"at_risk_{AS_OF}.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["customer_id"] for r in records] == frame["customer_id"].tolist()
    assert list(records[0]) == list(CRM_COLUMNS)
    assert records[0]["reason_3"] is None
    assert records[2]["rank"] == 3


def test_export_without_a_published_list_says_to_score_first(tmp_path):
    cfg = Config(workdir=tmp_path / "work")
    with pytest.raises(OutputMissingError, match=r"churn score --as-of 2025-03-31"):
        run_export(cfg, AS_OF, "csv")
    with pytest.raises(OutputMissingError, match=r"churn score"):
        run_export(cfg, None, "csv")
    with pytest.raises(ConfigError, match="unknown export target"):
        run_export(cfg, AS_OF, "ftp")


def test_cli_export_csv_prints_summary_and_missing_list_exits_8(tmp_path):
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(f"workdir: {tmp_path / 'work'}\n")
    runner = CliRunner()
    missing = runner.invoke(
        app, ["export", "--config", str(cfg_path), "--as-of", "2025-03-31", "--to", "csv"]
    )
    assert missing.exit_code == 8, missing.output
    assert "churn score --as-of 2025-03-31" in missing.output

    publish(Config(workdir=tmp_path / "work"), make_at_risk(4))
    ok = runner.invoke(app, ["export", "--config", str(cfg_path), "--as-of", "2025-03-31", "--to", "csv"])
    assert ok.exit_code == 0, ok.output
    # the summary row: 4 records, 4 delivered now, 0 already delivered, 0 not delivered
    assert re.search(r"│\s+4 │\s+4 │\s+0 │\s+0 │", ok.output), ok.output
    assert "at_risk_2025-03-31.csv" in ok.output.replace("\n", "")
    assert (tmp_path / "work" / "exports" / "at_risk_2025-03-31.csv").is_file()


# -------------------------------------------------------------------------------------------- registry


@pytest.fixture
def registry():
    """The target registry, restored after the test (registering a target is global)."""
    before = dict(TARGETS)
    yield TARGETS
    TARGETS.clear()
    TARGETS.update(before)


def test_registry_lists_exactly_the_known_targets_and_the_cli_offers_them():
    assert list(TARGETS) == ["csv", "jsonl", "webhook", "postgres"]
    assert all(issubclass(cls, ExportTarget) and cls.name == name for name, cls in TARGETS.items())
    help_text = " ".join(CliRunner().invoke(app, ["export", "--help"], env={"COLUMNS": "200"}).output.split())
    assert "Export target: csv, jsonl, webhook or postgres." in help_text
    assert "to csv, jsonl, a webhook or Postgres." in help_text
    with pytest.raises(ConfigError, match="choose one of csv, jsonl, webhook, postgres$"):
        run_export(Config(), AS_OF, "ftp")


def _memory_target(complete: bool = True) -> type[ExportTarget]:
    """A target defined in a test: keeps the customers it got; fails the last one when not `complete`."""

    class MemoryTarget(ExportTarget):
        name = "memory"
        title = "memory"
        received: list[list[str]] = []

        def deliver(self, at_risk, as_of, context):
            ids = at_risk["customer_id"].tolist()
            kept = ids if complete else ids[:-1]
            self.received.append(kept)
            return Delivery(
                delivered=len(kept),
                skipped=0,
                failed=len(ids) - len(kept),
                destination=f"memory of {context.source.name}",
                details=kept,
                summary=f"{len(kept)} of {len(ids)} kept as of {as_of}",
                complete=complete,
            )

    return MemoryTarget


def test_a_new_target_is_one_registered_class(tmp_path, registry):
    cfg = Config(workdir=tmp_path / "work")
    frame = make_at_risk(6)
    publish(cfg, frame)
    memory = register(_memory_target())
    assert "memory" in registry

    result = run_export(cfg, AS_OF, "memory")

    assert memory.received == [frame["customer_id"].tolist()]
    assert (result.target, result.records, result.delivered, result.failed) == ("memory", 6, 6, 0)
    assert (
        result.destination == "memory of at_risk.parquet" and result.details == frame["customer_id"].tolist()
    )
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(f"workdir: {tmp_path / 'work'}\n")
    cli = CliRunner().invoke(app, ["export", "-c", str(cfg_path), "--to", "memory"])
    assert cli.exit_code == 0, cli.output
    assert f"6 of 6 kept as of {AS_OF}" in cli.output


def test_a_partial_delivery_of_any_target_raises_with_its_result_and_exits_7(tmp_path, registry):
    cfg = Config(workdir=tmp_path / "work")
    publish(cfg, make_at_risk(4))
    register(_memory_target(complete=False))
    with pytest.raises(IncompleteExport, match="3 of 4 kept") as err:
        run_export(cfg, AS_OF, "memory")
    assert isinstance(err.value, ExportError) and err.value.result.failed == 1
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(f"workdir: {tmp_path / 'work'}\n")
    cli = CliRunner().invoke(app, ["export", "-c", str(cfg_path), "--to", "memory"])
    assert cli.exit_code == ExportError.exit_code == 7, cli.output
    assert cli.output.count("3 of 4 kept") == 1, "the report is printed once, as the error"


def test_a_target_must_name_its_declared_config_section(registry):
    class Undeclared(ExportTarget):
        name, title, config_field, config_model = "hubspot", "HubSpot", "hubspot", PostgresConfig

    class Mismatched(ExportTarget):
        name, title, config_field, config_model = "pg2", "Postgres", "webhook", PostgresConfig

    for cls in (Undeclared, Mismatched):
        with pytest.raises(
            TypeError, match=f"ExportConfig.{cls.config_field} must be declared as PostgresConfig"
        ):
            register(cls)
        assert cls.name not in registry


# --------------------------------------------------------------------------------------------- webhook


class LocalServer:
    """An HTTP server on 127.0.0.1 (a free port) answering with `handler`, in a thread for a `with` block."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class Receiver(LocalServer):
    """A CRM stand-in on 127.0.0.1: applies each record once per idempotency key, and misbehaves on cue.

    `fail_first` (batch number -> status) answers the first attempt of that batch with the status;
    `hang_first` batch numbers stall their first attempt past the client timeout (after applying the
    records, like a server that did the work but whose answer never arrived); `reject_ids` customers make
    any batch holding them fail with 422.
    """

    def __init__(self, fail_first=None, hang_first=(), reject_ids=(), hang_seconds=3.0):
        self.fail_first = dict(fail_first or {})
        self.hang_first = set(hang_first)
        self.reject_ids = set(reject_ids)
        self.hang_seconds = hang_seconds
        self.attempts: Counter = Counter()  # batch Idempotency-Key -> attempts
        self.batch_headers: dict[int, set[str]] = defaultdict(set)
        self.received: Counter = Counter()  # record key -> times received
        self.applied: Counter = Counter()  # record key -> times applied (must end at 1)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                header = self.headers.get("Idempotency-Key")
                keys = [r["idempotency_key"] for r in body["records"]]
                batch = body["batch"]
                with receiver.lock:
                    receiver.attempts[header] += 1
                    attempt = receiver.attempts[header]
                    receiver.batch_headers[batch].add(header)
                    receiver.received.update(keys)
                if any(r["customer_id"] in receiver.reject_ids for r in body["records"]):
                    return self._answer(422, b'{"error": "unknown customer"}')
                if attempt == 1 and batch in receiver.fail_first:
                    return self._answer(receiver.fail_first[batch], b'{"error": "try later"}')
                with receiver.lock:
                    for k in keys:
                        if receiver.applied[k] == 0:
                            receiver.applied[k] += 1
                if attempt == 1 and batch in receiver.hang_first:
                    time.sleep(receiver.hang_seconds)
                self._answer(200, json.dumps({"accepted": len(keys)}).encode())

            def _answer(self, status, payload):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout case)

        super().__init__(Handler)
        self.url = f"http://127.0.0.1:{self.port}/hooks/churn"


def _webhook_cfg(tmp_path, url, **webhook) -> Config:
    settings = {
        "url": url,
        "batch_size": 10,
        "max_retries": 3,
        "backoff_seconds": 0.01,
        # well above a loaded machine's worst answer time (0.4 s once made a normal batch time out in CI);
        # the receiver's hang (3 s) is well above it
        "timeout_seconds": 2.0,
    }
    return Config(workdir=tmp_path / "work", export={"webhook": {**settings, **webhook}})


def _ledger_keys(cfg: Config) -> set[str]:
    ledger = json.loads((score_dir(cfg.workdir, AS_OF) / WEBHOOK_LEDGER_FILE).read_text())
    return {k for state in ledger["endpoints"].values() for k in state["acknowledged"]}


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch):
    monkeypatch.delenv("CHURN_WEBHOOK_URL", raising=False)


def test_webhook_retries_5xx_and_timeouts_and_delivers_each_customer_once(tmp_path):
    frame = make_at_risk(45)  # 5 batches of 10, 10, 10, 10, 5
    all_keys = {f"{cid}:{AS_OF}" for cid in frame["customer_id"]}
    with Receiver(fail_first={2: 500, 4: 503}, hang_first={3}) as rx:
        cfg = _webhook_cfg(tmp_path, rx.url)
        publish(cfg, frame)
        result = run_export(cfg, AS_OF, "webhook")

        assert result.delivered == 45 and result.failed == 0
        assert result.details.retries == 3, "one retry each for the 500, the 503 and the timeout"
        assert set(rx.applied) == all_keys and set(rx.applied.values()) == {1}, "every customer applied once"
        # The timed-out batch reached the server twice: the idempotency keys made that harmless.
        assert sum(rx.received.values()) > 45
        assert all(len(h) == 1 for h in rx.batch_headers.values()), "a retry repeats its batch key"
        assert _ledger_keys(cfg) == all_keys

        # A re-run finds everything acknowledged and sends nothing.
        received_before = sum(rx.received.values())
        again = run_export(cfg, AS_OF, "webhook")
        assert again.skipped == 45 and again.delivered == 0
        assert sum(rx.received.values()) == received_before


def test_webhook_permanent_4xx_reports_failure_and_marks_nothing_unacknowledged(tmp_path):
    frame = make_at_risk(30)  # batches: C0000-09, C0010-19, C0020-29
    batch2 = {f"C{i:04d}:{AS_OF}" for i in range(10, 20)}
    with Receiver(reject_ids={"C0013"}) as rx:
        cfg = _webhook_cfg(tmp_path, rx.url)
        publish(cfg, frame)
        with pytest.raises(ExportError) as err:
            run_export(cfg, AS_OF, "webhook")
        message = str(err.value)
        assert "20 of 30 records acknowledged" in message
        assert "batch 2" in message and "HTTP 422" in message and "permanent" in message
        assert err.value.result.failed == 10 and err.value.result.details.failed_batches == [2]
        assert max(rx.attempts.values()) == 1, "a 4xx is not retried"
        ledger = _ledger_keys(cfg)
        assert len(ledger) == 20 and not (ledger & batch2)

        # Once the receiver accepts the customer, a re-run sends exactly the 10 unacknowledged records.
        rx.reject_ids = set()
        rx.received.clear()
        retry = run_export(cfg, AS_OF, "webhook")
        assert retry.delivered == 10 and retry.skipped == 20
        assert set(rx.received) == batch2
        assert _ledger_keys(cfg) == {f"{cid}:{AS_OF}" for cid in frame["customer_id"]}


def test_webhook_endpoint_down_gives_up_after_retries_and_stops(tmp_path):
    with Receiver() as rx:
        url = rx.url  # closed on exit: every later attempt is refused
    cfg = _webhook_cfg(tmp_path, url, max_retries=2)
    publish(cfg, make_at_risk(25))
    with pytest.raises(ExportError) as err:
        run_export(cfg, AS_OF, "webhook")
    result = err.value.result
    assert result.delivered == 0 and result.failed == 25
    assert result.details.failed_batches == [1] and result.details.not_attempted == 15
    assert result.details.retries == 2
    assert "connection failed" in str(err.value) and "after 2 retries" in str(err.value)
    assert "25 records are NOT marked exported" in str(err.value)
    assert not (score_dir(cfg.workdir, AS_OF) / WEBHOOK_LEDGER_FILE).exists() or _ledger_keys(cfg) == set()


def test_webhook_relists_everything_when_the_date_was_rescored_with_other_content(tmp_path):
    with Receiver() as rx:
        cfg = _webhook_cfg(tmp_path, rx.url)
        publish(cfg, make_at_risk(8, seed=1))
        run_export(cfg, AS_OF, "webhook")
        publish(cfg, make_at_risk(8, seed=2))  # a re-score replaced the list with different probabilities
        again = run_export(cfg, AS_OF, "webhook")
    assert again.delivered == 8 and again.skipped == 0


def test_webhook_url_from_env_and_missing_url(tmp_path, monkeypatch):
    cfg = Config(workdir=tmp_path / "work")
    publish(cfg, make_at_risk(3))
    with pytest.raises(ConfigError, match="CHURN_WEBHOOK_URL"):
        run_export(cfg, AS_OF, "webhook")
    with Receiver() as rx:
        monkeypatch.setenv("CHURN_WEBHOOK_URL", rx.url)
        result = run_export(cfg, AS_OF, "webhook")
        assert result.delivered == 3 and len(rx.applied) == 3


def test_cli_webhook_failure_prints_report_and_exits_7(tmp_path, monkeypatch):
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(
        f"workdir: {tmp_path / 'work'}\nexport:\n  webhook:\n    batch_size: 5\n    backoff_seconds: 0\n"
    )
    publish(Config(workdir=tmp_path / "work"), make_at_risk(10))
    with Receiver(reject_ids={"C0007"}) as rx:
        monkeypatch.setenv("CHURN_WEBHOOK_URL", rx.url)
        result = CliRunner().invoke(app, ["export", "-c", str(cfg_path), "--to", "webhook"])
    assert result.exit_code == ExportError.exit_code, result.output
    assert "5 of 10 records acknowledged" in result.output and "HTTP 422" in result.output
    assert result.output.count("records acknowledged") == 1, "the report is printed once"


def test_webhook_token_in_the_url_stays_out_of_logs_errors_and_the_ledger(tmp_path, caplog):
    import logging

    token = "tok9Secret4Q"
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    with Receiver(fail_first={2: 503}) as rx:
        cfg = _webhook_cfg(tmp_path, f"{rx.url}?token={token}", max_retries=1)
        publish(cfg, make_at_risk(20))
        ok = run_export(cfg, AS_OF, "webhook")  # batch 2 retried once, then acknowledged
        url = rx.url
    assert ok.delivered == 20 and ok.destination.endswith("/hooks/churn?token=***")
    publish(cfg, make_at_risk(20, seed=9))  # re-scored: everything is sent again, to a closed port
    with pytest.raises(ExportError) as err:
        run_export(cfg, AS_OF, "webhook")
    assert "connection failed" in str(err.value) and "token=***" in str(err.value)
    assert any("retry 1/1" in r.getMessage() for r in caplog.records)
    assert any(
        url.split("//")[1].split("/")[0] in r.getMessage()
        for r in caplog.records
        if r.name.startswith("urllib3")
    )
    assert token not in str(err.value) and token not in caplog.text
    assert token not in (score_dir(cfg.workdir, AS_OF) / WEBHOOK_LEDGER_FILE).read_text()
