"""No secret leaves the process: a real training, scoring and failing exports with secrets in the config, then
everything the run wrote (working dir, MLflow store and artifacts, logs, CLI output) is searched for them."""

from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from churn_pipeline.cli import _common, app
from churn_pipeline.core.config import Config, public_config, redact
from churn_pipeline.core.errors import ExportError
from tests.pg_helpers import password_only_role
from tests.pipeline.test_export import LocalServer

SECRET = "Zq7xSecretTok3n9"  # alphanumeric: URL-encoding, JSON or YAML cannot disguise it


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "https://user:pw@host/x?token=abc&api_key=k1",
            "https://user:***@host/x?token=***&api_key=***",
        ),
        ("host=db port=5432 password=s3 dbname=crm", "host=db port=5432 password=*** dbname=crm"),
        ("host=db password='a b\\' c' user=u", "host=db password=*** user=u"),
        ("postgresql://churn:pw@db:5432/crm?sslpassword=x", "postgresql://churn:***@db:5432/crm?sslpassword=***"),
        ("https://tok@host/hook", "https://***@host/hook"),
        ("postgresql://churn@db/crm", "postgresql://churn@db/crm"),  # a login name is no secret
        ("Max retries exceeded with url: /hook?token=abc (Caused by", "Max retries exceeded with url: /hook?token=*** (Caused by"),
        ("http://127.0.0.1:8000/hooks/churn", "http://127.0.0.1:8000/hooks/churn"),
    ],
)  # fmt: skip
def test_redact_hides_passwords_and_query_values_and_keeps_the_rest(text, expected):
    assert redact(text) == expected


def test_config_secrets_are_secretstr_and_dumps_show_them_redacted():
    cfg = Config(
        export={
            "webhook": {"url": f"https://crm.example.com/hook?token={SECRET}"},
            "postgres": {"dsn": f"host=db user=churn password={SECRET}"},
        },
        tracking={"uri": f"postgresql://mlflow:{SECRET}@db/mlflow"},
    )
    assert SECRET not in repr(cfg.export) + str(cfg.export) + cfg.export.model_dump_json()
    assert cfg.export.webhook.url.get_secret_value().endswith(SECRET)
    public = public_config(cfg)
    assert public["export"]["webhook"]["url"] == "https://crm.example.com/hook?token=***"
    assert public["export"]["postgres"]["dsn"] == "host=db user=churn password=***"
    assert public["tracking"]["uri"] == "postgresql://mlflow:***@db/mlflow"


def test_a_config_error_about_a_secret_shows_it_redacted(tmp_path):
    from churn_pipeline.core.config import load_config
    from churn_pipeline.core.errors import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text(f"export:\n  webhook:\n    url: ['https://crm.example.com/hook?token={SECRET}']\n")
    with pytest.raises(ConfigError, match=r"export\.webhook\.url") as err:
        load_config(path)
    assert "token=***" in str(err.value) and SECRET not in str(err.value)

    path.write_text(f"export:\n  webhook:\n    url: [https://crm.example.com/hook?token={SECRET}]\n")
    with pytest.raises(ConfigError, match="not valid YAML") as err:
        load_config(path)
    assert "token=***" in str(err.value) and SECRET not in str(err.value)


class _DownEndpoint(LocalServer):
    """An endpoint on 127.0.0.1 that always answers 503 and echoes the request line (with its query string)
    in the body, as some proxies do."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                body = f"upstream unavailable for POST {self.path}".encode()
                self.send_response(503)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)


def _files_holding(root: Path, needle: bytes) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes())


@pytest.mark.slow
def test_no_secret_reaches_mlflow_files_logs_or_output(company, tmp_path, caplog, monkeypatch, pg_dsn):
    # The CLI's logging setup replaces the root handlers (caplog's too): keep caplog, at DEBUG for every logger.
    monkeypatch.setattr(_common, "setup_logging", lambda verbose: None)
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "mlflow", "alembic", "psycopg"):
        caplog.set_level(logging.DEBUG, logger=name)
    monkeypatch.delenv("CHURN_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("CHURN_PG_DSN", raising=False)

    work = tmp_path / "work"
    pg_role_dsn = password_only_role(pg_dsn, "churn_secret_test")
    runner = CliRunner()
    outputs: list[str] = []

    with _DownEndpoint() as down:
        url = f"http://crm:{SECRET}@127.0.0.1:{down.port}/hooks/churn?token={SECRET}&api_key={SECRET}"
        settings = public_config(company.config_in(work))
        settings["export"] = {
            "webhook": {"url": url, "batch_size": 200, "max_retries": 2, "backoff_seconds": 0.01},
            "postgres": {"dsn": f"{pg_role_dsn} password={SECRET}", "table": "secret_test"},
        }
        cfg_path = tmp_path / "config.yaml"
        cfg_path.write_text(yaml.safe_dump(settings))

        for args in (["train"], ["score"]):
            res = runner.invoke(app, [*args, "-c", str(cfg_path)])
            outputs.append(res.output)
            assert res.exit_code == 0, res.output

        res = runner.invoke(app, ["export", "-c", str(cfg_path), "--to", "webhook"])
        outputs.append(res.output)
        assert res.exit_code == ExportError.exit_code, res.output
        assert "gave up after retries" in res.output and "HTTP 503" in res.output

        # the same endpoint given through the environment instead of the config
        monkeypatch.setenv("CHURN_WEBHOOK_URL", url.replace("/hooks/churn", "/hooks/env"))
        res = runner.invoke(app, ["export", "-c", str(cfg_path), "--to", "webhook"])
        outputs.append(res.output)
        assert res.exit_code == ExportError.exit_code, res.output

    res = runner.invoke(app, ["export", "-c", str(cfg_path), "--to", "postgres"])
    outputs.append(res.output)
    assert res.exit_code == ExportError.exit_code, res.output
    assert "password authentication failed" in res.output and "password=***" in res.output

    # the searches below must be able to find the secret: the run did write the redacted config and retries
    assert (work / "mlflow.db").is_file() and any(work.rglob("config.yaml"))
    assert any("retry 1/2" in r.getMessage() for r in caplog.records)
    needle = SECRET.encode()
    assert _files_holding(work, needle) == []
    assert [r.getMessage() for r in caplog.records if SECRET in r.getMessage()] == []
    assert SECRET not in caplog.text
    assert [o for o in outputs if SECRET in o] == []
