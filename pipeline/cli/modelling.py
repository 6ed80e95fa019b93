"""Commands: `churn train` (train, track, register, gate) and `churn evaluate` (re-evaluate a registered version)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from churn_pipeline.cli._common import (
    ConfigOpt,
    DataOpt,
    EngineOpt,
    OutOpt,
    console,
    load,
    print_after_publish,
    reported_errors,
)
from churn_pipeline.core.config import Config, redact

# The stages are imported inside the commands (and the one printer that needs a name from them): they load
# pandas, LightGBM and MLflow, which `churn --help` and the other commands need not wait for.
if TYPE_CHECKING:
    from churn_pipeline.stages.evaluation import Evaluation
    from churn_pipeline.stages.train import EvaluationResult, TrainingResult

app = typer.Typer()

VersionOpt = Annotated[
    str | None, typer.Option("--version", help="Registry version to evaluate (default: the champion).")
]

_ROWS = [
    ("roc_auc", "ROC-AUC", "{:.4f}"),
    ("pr_auc", "PR-AUC", "{:.4f}"),
    ("top_decile_lift", "top-decile lift", "{:.2f}"),
    ("precision_at_list", "precision@{pct}", "{:.3f}"),
    ("recall_at_list", "recall@{pct}", "{:.3f}"),
    ("brier", "Brier score", "{:.4f}"),
    ("log_loss", "log loss", "{:.4f}"),
    ("ece", "calibration err.", "{:.4f}"),
    ("mean_predicted", "mean predicted", "{:.4f}"),
    ("churn_rate", "churn rate", "{:.4f}"),
]


def _fmt(value: float | None, pattern: str) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return pattern.format(value)


def _metrics_table(evaluation: Evaluation, title: str, list_size_pct: float) -> Table:
    from churn_pipeline.stages.evaluation import MODEL, ORACLE

    chosen = evaluation.chosen
    scorers = [chosen] + [k for k in evaluation.metrics if k not in (chosen, ORACLE)]
    scorers += [ORACLE] if ORACLE in evaluation.metrics else []
    table = Table(title=title, title_justify="left")
    table.add_column("metric", no_wrap=True)
    for k in scorers:
        head = f"{k} *" if k == chosen and k != MODEL else k
        table.add_column(head, justify="right", no_wrap=True)
    ratio_key = f"{chosen}_to_oracle"
    has_ratio = ratio_key in evaluation.ratios
    if has_ratio:
        table.add_column("model/oracle", justify="right", no_wrap=True)
    for key, label, pattern in _ROWS:
        label = label.format(pct=f"{list_size_pct:g}%")
        row = [label] + [_fmt(evaluation.metrics[k].get(key), pattern) for k in scorers]
        if has_ratio:
            row.append(_fmt(evaluation.ratios[ratio_key].get(key), "{:.3f}"))
        table.add_row(*row)
    profit_row = ["best list: profit"] + [
        f"{evaluation.profit[k].best_k_pct:.3g}%: {evaluation.profit[k].best_profit:,.0f}" for k in scorers
    ]
    if has_ratio:
        profit_row.append("")
    table.add_row(*profit_row)
    return table


def _ui_hint(tracking_uri: str) -> str:
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {redact(tracking_uri)} in a browser"
    return f"mlflow ui --backend-store-uri {redact(tracking_uri)}"


@app.command("train")
def train(
    config: ConfigOpt = None, data: DataOpt = None, engine: EngineOpt = None, out: OutOpt = None
) -> None:
    """Develop the candidate models (model.candidates) on an out-of-time split (or customer-grouped
    cross-validation for a single snapshot), register the best on validation after refitting it, log
    everything to MLflow and promote it to champion only if it beats the current one."""
    with reported_errors():
        from churn_pipeline.simulator.oracle import oracle_for
        from churn_pipeline.stages.train import run_training

        cfg = load(config, data, out, engine=engine)
        result = run_training(cfg, progress=True, oracle=oracle_for(cfg))
    print_after_publish(
        f"model {result.model_name} v{result.model_version} (registered)", _print_training, result, cfg
    )


def _print_training(result: TrainingResult, cfg: Config) -> None:
    ev = result.evaluation
    console.print(f"[bold]split:[/] {result.strategy}")
    sizes = result.split_sizes
    if sizes.get("folds", 1) > 1:
        rows = f"{sizes['development']:,} in {sizes['folds']} customer-grouped folds"
    else:
        rows = f"train {sizes['train']:,}, validation {sizes['valid']:,}"
    console.print(
        f"rows: {rows}, test {sizes['test']:,}; {len(result.features)} features; refitted on "
        f"{sizes.get('development', sizes['train']):,} rows"
    )
    for name, note in result.notes.items():
        console.print(f"  {name}: {note}")
    console.print(f"[bold]chosen:[/] {result.chosen} ({result.reason})")
    _print_evaluation(
        ev,
        f"Test metrics ({', '.join(map(str, ev.test_snapshots))}, {ev.rows:,} customers; * = registered)",
        cfg,
    )
    d = result.decision
    verdict = "[bold green]champion[/]" if d.promoted else "[bold yellow]challenger[/]"
    console.print(f"registry: {result.model_name} v{result.model_version} -> {verdict}: {d.reason}")
    console.print(f"MLflow run {result.run_id} (experiment {cfg.tracking.experiment}); view it with:")
    console.print(f"  [bold]{_ui_hint(result.tracking_uri)}[/]", soft_wrap=True)


def _print_evaluation(ev: Evaluation, title: str, cfg: Config) -> None:
    """The metrics table, the oracle note and the profit-optimal list size (train and evaluate alike)."""
    console.print(_metrics_table(ev, title, cfg.evaluation.list_size_pct))
    if ev.oracle_note:
        console.print(ev.oracle_note)
    best = ev.profit[ev.chosen]
    e = cfg.evaluation
    economics = f"value {e.customer_value:g}, offer cost {e.offer_cost:g}, acceptance {e.offer_acceptance:g}"
    if ev.list_pct is not None:
        console.print(
            f"at-risk list: the top [bold]{ev.list_pct:.3g}%[/] ({ev.list_pct_origin}); on the test customers "
            f"it earns {ev.list_profit:,.0f} (the best list in hindsight, top {best.best_k_pct:.3g}%, would "
            f"earn {best.best_profit:,.0f}; {economics})"
        )
    else:
        console.print(
            f"profit-optimal list on the test customers: the top [bold]{best.best_k_pct:.3g}%[/] "
            f"(expected profit {best.best_profit:,.0f}; {economics})"
        )


@app.command("evaluate")
def evaluate(
    config: ConfigOpt = None,
    data: DataOpt = None,
    engine: EngineOpt = None,
    out: OutOpt = None,
    version: VersionOpt = None,
) -> None:
    """Evaluate a registered model version (default: the champion) on the latest test snapshots."""
    with reported_errors():
        from churn_pipeline.simulator.oracle import oracle_for
        from churn_pipeline.stages.train import run_evaluation

        cfg = load(config, data, out, engine=engine)
        result = run_evaluation(cfg, version, progress=True, oracle=oracle_for(cfg))
    print_after_publish(f"the evaluation run {result.run_id} (logged)", _print_evaluation_run, result, cfg)


def _print_evaluation_run(result: EvaluationResult, cfg: Config) -> None:
    ev = result.evaluation
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    _print_evaluation(
        ev,
        f"{result.model_name} v{result.model_version} on test snapshots "
        f"{', '.join(map(str, ev.test_snapshots))} ({ev.rows:,} customers)",
        cfg,
    )
    console.print(f"MLflow run {result.run_id}; view it with:")
    console.print(f"  [bold]{_ui_hint(result.tracking_uri)}[/]", soft_wrap=True)
