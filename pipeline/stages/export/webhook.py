"""Webhook export: JSON batches over HTTP POST with idempotency keys, retries and a delivery ledger.

Delivery is at-least-once on the wire and exactly-once by key: every record carries
`idempotency_key = "<customer_id>:<as_of>"` and every batch an `Idempotency-Key` header derived from the
keys it holds, so a receiver can drop repeats of a retried batch. The ledger (JSON next to the at-risk
list, rewritten atomically after each acknowledged batch) lists the keys the endpoint acknowledged with
a 2xx; a re-run sends only the rest, and nothing enters the ledger without an acknowledgement.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pandas as pd

from churn_pipeline.core.artifacts import WEBHOOK_LEDGER_FILE
from churn_pipeline.core.config import WEBHOOK_URL_ENV, WebhookConfig, export_secrets, redact
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.data.io import atomic_write_json, file_sha256
from churn_pipeline.stages.export.files import crm_frame
from churn_pipeline.stages.export.target import Delivery, ExportContext, ExportTarget, register

if TYPE_CHECKING:  # imported where a delivery runs: every `churn` command loads the registry, few POST
    import requests

log = logging.getLogger(__name__)


class _RedactingFilter(logging.Filter):
    """Redacts a record before it reaches any handler: urllib3 logs each request line (path and query string,
    so any token in the URL) at DEBUG, which a verbose run would otherwise write out."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactingFilter())

URL_ENV = WEBHOOK_URL_ENV
# Statuses worth retrying: server errors, plus the two 4xx that mean "not now" rather than "never".
_RETRY_4XX = {408, 429}
_MAX_WAIT_SECONDS = 60.0


@dataclass
class BatchFailure:
    batch: int
    first_rank: int
    last_rank: int
    records: int
    reason: str
    permanent: bool


@dataclass
class WebhookReport:
    """What one delivery run did; `complete` when every record of the list is acknowledged."""

    endpoint: str
    total: int
    already_acknowledged: int
    sent: int = 0
    batches_sent: int = 0
    retries: int = 0
    failures: list[BatchFailure] = field(default_factory=list)
    not_attempted: int = 0
    ledger: Path | None = None

    @property
    def failed(self) -> int:
        return sum(f.records for f in self.failures)

    @property
    def acknowledged(self) -> int:
        return self.already_acknowledged + self.sent

    @property
    def complete(self) -> bool:
        return self.acknowledged == self.total

    @property
    def failed_batches(self) -> list[int]:
        """Numbers of the batches that failed in this run."""
        return [f.batch for f in self.failures]

    def summary(self) -> str:
        """A plain-words failure report: counts, each failed batch, what to do next."""
        lines = [
            f"webhook delivery to {self.endpoint}: {self.acknowledged} of {self.total} records acknowledged "
            f"({self.already_acknowledged} earlier, {self.sent} in this run, {self.retries} retries)"
        ]
        for f in self.failures:
            kind = "permanent failure" if f.permanent else "gave up after retries"
            lines.append(
                f"  - batch {f.batch} (ranks {f.first_rank}-{f.last_rank}, {f.records} records): {kind}: {f.reason}"
            )
        if self.not_attempted:
            lines.append(f"  - {self.not_attempted} records not attempted: the endpoint stopped answering")
        if not self.complete:
            lines.append(
                f"  {self.total - self.acknowledged} records are NOT marked exported; fix the cause and re-run the "
                f"same export: only unacknowledged records are sent again (ledger: {self.ledger})"
            )
        return "\n".join(lines)


def resolve_url(cfg: WebhookConfig) -> str:
    """The endpoint: env CHURN_WEBHOOK_URL overrides `export.webhook.url`. The result is a secret (it may
    carry a token): only `redact(url)` may appear in a message, a log line or a file."""
    secret = export_secrets().webhook_url or cfg.url
    url = secret.get_secret_value().strip() if secret is not None else ""
    if not url:
        raise ConfigError(
            f"no webhook URL: set export.webhook.url in the config or the {URL_ENV} environment variable"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"webhook URL {redact(url)!r} is not an http(s) URL, e.g. https://crm.example.com/hooks/churn"
        )
    return url


def idempotency_keys(at_risk: pd.DataFrame) -> pd.Series:
    """One key per customer and as-of date, e.g. `C00042:2025-06-30`."""
    as_of = pd.to_datetime(at_risk["as_of"]).dt.strftime("%Y-%m-%d")
    return at_risk["customer_id"].astype(str) + ":" + as_of


def _batch_key(keys: pd.Series) -> str:
    # Same records -> same header, so a retried batch is recognisable as a repeat.
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:32]


def _load_ledger(path: Path, as_of: dt.date, list_sha256: str) -> dict:
    fresh = {"as_of": as_of.isoformat(), "at_risk_sha256": list_sha256, "endpoints": {}}
    if not path.is_file():
        return fresh
    ledger = json.loads(path.read_text())
    if ledger.get("at_risk_sha256") != list_sha256:
        # The list was re-scored with different content: earlier acknowledgements were for other rows.
        log.warning("at-risk list for %s changed since the last webhook export; delivering it afresh", as_of)
        return fresh
    return ledger


@register
class WebhookTarget(ExportTarget):
    name = "webhook"
    title = "a webhook"
    config_field = "webhook"
    config_model = WebhookConfig
    settings: WebhookConfig

    def deliver(self, at_risk: pd.DataFrame, as_of: dt.date, context: ExportContext) -> Delivery:
        """POST what the endpoint has not acknowledged yet; the ledger lives beside the published list."""
        sha = file_sha256(context.source)
        ledger = context.source.parent / WEBHOOK_LEDGER_FILE
        report = deliver_batches(at_risk, as_of, self.settings, ledger, sha, progress=context.progress)
        return Delivery(
            delivered=report.sent,
            skipped=report.already_acknowledged,
            failed=report.total - report.acknowledged,
            destination=report.endpoint,
            details=report,
            summary=report.summary(),
            complete=report.complete,
        )


def deliver_batches(
    at_risk: pd.DataFrame,
    as_of: dt.date,
    cfg: WebhookConfig,
    ledger_path: Path,
    list_sha256: str,
    *,
    progress: bool = False,
) -> WebhookReport:
    """POST the unacknowledged part of the at-risk list in batches; update the ledger per acknowledged batch."""
    url = resolve_url(cfg)
    endpoint = redact(url)
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if cfg.auth_header:
        value = os.environ.get(cfg.auth_header)
        if not value:
            raise ConfigError(
                f"export.webhook.auth_header names env variable {cfg.auth_header!r}, which is not set: export it "
                "with the Authorization header value"
            )
        headers["Authorization"] = value

    ledger = _load_ledger(ledger_path, as_of, list_sha256)
    endpoint_state = ledger["endpoints"].setdefault(endpoint, {"acknowledged": []})
    acknowledged: list[str] = endpoint_state["acknowledged"]

    frame = crm_frame(at_risk)
    frame.insert(0, "idempotency_key", idempotency_keys(at_risk).to_numpy())
    pending = frame[~frame["idempotency_key"].isin(set(acknowledged))]
    report = WebhookReport(
        endpoint=endpoint,
        total=len(frame),
        already_acknowledged=len(frame) - len(pending),
        ledger=ledger_path,
    )
    if pending.empty:
        return report

    import requests

    starts = range(0, len(pending), cfg.batch_size)
    session = requests.Session()
    with _progress(progress, len(starts), endpoint) as advance:
        for batch_no, start in enumerate(starts, 1):
            batch = pending.iloc[start : start + cfg.batch_size]
            records = batch.to_json(orient="records", force_ascii=False, double_precision=15)
            # Records are serialised by pandas in one call; only the envelope is assembled here.
            body = f'{{"as_of": "{as_of.isoformat()}", "batch": {batch_no}, "records": {records}}}'.encode()
            ok, reason, permanent, retries = _post_with_retries(
                session, url, body, {**headers, "Idempotency-Key": _batch_key(batch["idempotency_key"])}, cfg
            )
            report.retries += retries
            if ok:
                acknowledged.extend(batch["idempotency_key"].tolist())
                atomic_write_json(ledger, ledger_path)
                report.sent += len(batch)
                report.batches_sent += 1
            else:
                report.failures.append(
                    BatchFailure(
                        batch=batch_no,
                        first_rank=int(batch["rank"].iloc[0]),
                        last_rank=int(batch["rank"].iloc[-1]),
                        records=len(batch),
                        reason=reason,
                        permanent=permanent,
                    )
                )
                if not permanent:
                    # The endpoint is down: hammering it with the remaining batches only prolongs the outage.
                    report.not_attempted = len(pending) - start - len(batch)
                    break
            advance()
    return report


def _post_with_retries(
    session: requests.Session, url: str, body: bytes, headers: dict, cfg: WebhookConfig
) -> tuple[bool, str, bool, int]:
    """(acknowledged, failure reason, permanent, retries used) for one batch."""
    import requests

    reason = ""
    for attempt in range(cfg.max_retries + 1):
        wait = cfg.backoff_seconds * 2**attempt
        try:
            resp = session.post(
                url, data=body, headers=headers, timeout=cfg.timeout_seconds, allow_redirects=False
            )
        except requests.Timeout:
            reason = f"no answer within {cfg.timeout_seconds:g}s (export.webhook.timeout_seconds)"
        except requests.ConnectionError as e:
            # requests puts the request path and its query string (with any token) into the message
            reason = f"connection failed: {type(e).__name__}: {redact(str(e))[:200]}"
        except requests.RequestException as e:  # e.g. a broken chunked answer; its message may hold the URL
            reason = f"request failed: {type(e).__name__}: {redact(str(e))[:200]}"
        else:
            if 200 <= resp.status_code < 300:
                return True, "", False, attempt
            reason = f"HTTP {resp.status_code} {resp.reason}: {redact(resp.text[:200])!r}"
            if resp.status_code < 500 and resp.status_code not in _RETRY_4XX:
                return False, reason, True, attempt
            retry_after = resp.headers.get("Retry-After", "")
            if retry_after.isdigit():
                wait = max(wait, float(retry_after))
        if attempt < cfg.max_retries:
            log.info(
                "webhook batch failed (%s); retry %d/%d in %.2fs", reason, attempt + 1, cfg.max_retries, wait
            )
            time.sleep(min(wait, _MAX_WAIT_SECONDS))
    return False, f"{reason} (after {cfg.max_retries} retries)", False, cfg.max_retries


class _progress:
    """A rich progress bar over batches, or a no-op."""

    def __init__(self, enabled: bool, total: int, endpoint: str):
        self.enabled, self.total, self.endpoint = enabled, total, endpoint

    def __enter__(self):
        if not self.enabled:
            return lambda: None
        from rich.progress import Progress

        self._bar = Progress(transient=True)
        self._bar.start()
        task = self._bar.add_task(f"POST {self.endpoint}", total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc):
        if self.enabled:
            self._bar.stop()
        return False
