"""`mlops-kit …` (also `python -m mlops_kit …`): one command per pipeline step."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from mlops_kit.config import Settings, display_path, get_settings

app = typer.Typer(
    help="mlops-kit: the runnable kit of the talk 'MLOps' (TDC Innovation 2022).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_BAD_INPUT = 2
EXIT_GATE_REFUSED = 3
EXIT_BUSY = 75  # EX_TEMPFAIL: another run holds the lock; a scheduler may retry later

DataOpt = typer.Option(
    None, "--data", help="CSV file (default: the shipped Palmer penguins raw table)."
)
TargetOpt = typer.Option(None, "--target", help="Column to predict (default: species).")
FeaturesOpt = typer.Option(
    None, "--features", help="Comma-separated feature columns (default: the penguin measurements)."
)
SplitOpt = typer.Option(
    "",
    "--split-column",
    help="Date/season column: its newest value is held out. 'none' for a seeded random split.",
)


def _features(value: str | None) -> list[str] | None:
    return [f.strip() for f in value.split(",") if f.strip()] if value else None


def _split(value: str) -> str | None:
    return None if value.lower() == "none" else value


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@app.command()
def prepare(
    data: Path = DataOpt,
    target: str = TargetOpt,
    features: str = FeaturesOpt,
    split_column: str = SplitOpt,
) -> None:
    """Data stage only: load, validate, clean, split and catalogue a table."""
    from mlops_kit.data import DataValidationError
    from mlops_kit.data import prepare as run_prepare

    settings = get_settings()
    try:
        prepared = run_prepare(settings, data, target, _features(features), _split(split_column))
    except DataValidationError as exc:
        _fail(str(exc))
    card = prepared.card
    typer.echo(f"data version   {card.data_version}")
    typer.echo(f"rows           {card.rows_raw} raw -> {card.rows_clean} clean {card.rows_dropped}")
    typer.echo(f"classes        {card.class_balance}")
    typer.echo(
        f"split          {card.split['by']}: {card.split['train_rows']} train / {card.split['eval_rows']} eval"
    )
    typer.echo(
        f"card           {display_path(settings.data_dir / card.data_version / 'card.json')}"
    )


@app.command()
def train(
    data: Path = DataOpt,
    target: str = TargetOpt,
    features: str = FeaturesOpt,
    split_column: str = SplitOpt,
    gate: float = typer.Option(
        None, "--gate", help="Quality gate: minimum score to become champion."
    ),
    metric: str = typer.Option(
        None, "--metric", help="Gate metric: f1_macro (default) or accuracy."
    ),
    candidates: str = typer.Option(None, "--candidates", help="Comma-separated candidate names."),
    fail_on_refusal: bool = typer.Option(
        False,
        "--fail-on-refusal",
        help=f"Exit {EXIT_GATE_REFUSED} when the gate refuses the model.",
    ),
) -> None:
    """The training pipeline in-process (no notebook): data, candidates, MLflow, registry, gate."""
    from mlops_kit.data import DataValidationError
    from mlops_kit.workflow import run_training_pipeline

    settings = get_settings()
    try:
        result = run_training_pipeline(
            settings,
            data_path=data,
            target=target,
            features=_features(features),
            split_column=_split(split_column),
            candidates=_features(candidates),
            quality_gate=gate,
            gate_metric=metric,
        )
    except (DataValidationError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(result.candidates_table().to_string(index=False))
    typer.echo("")
    typer.echo(result.summary().to_string(index=False, header=False))
    if fail_on_refusal and not result.decision.promoted:
        raise typer.Exit(EXIT_GATE_REFUSED)


@app.command()
def pipeline(
    notebooks: list[str] = typer.Argument(
        None, help="Notebooks to run, by name or number (default: all)."
    ),
    param: list[str] = typer.Option(
        [], "-p", "--param", help="Notebook parameter NAME=VALUE (YAML value), repeatable."
    ),
    out_dir: Path = typer.Option(
        None, "--out-dir", help="Where executed notebooks go (default: runs/<time>/)."
    ),
) -> None:
    """Run the notebooks headless with papermill; each executed notebook is kept as the run's report."""
    from mlops_kit.pipeline import (
        PipelineBusyError,
        resolve_notebooks,
        run_notebooks,
        summary_lines,
    )

    parameters = {}
    for item in param:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            _fail(f"parameter '{item}' must look like NAME=VALUE")
        parameters[name.strip()] = yaml.safe_load(value) if value.strip() else ""
    settings = get_settings()
    try:
        chosen = resolve_notebooks(notebooks)
        results = run_notebooks(chosen, parameters, settings, out_dir)
    except ValueError as exc:
        _fail(str(exc))
    except PipelineBusyError as exc:
        _fail(str(exc), EXIT_BUSY)
    for line in summary_lines(results):
        typer.echo(line)
    if not all(r.ok for r in results) or len(results) < len(chosen):
        raise typer.Exit(1)


@app.command()
def serve(
    host: str = typer.Option(None, "--host", help="Interface to listen on (default 127.0.0.1)."),
    port: int = typer.Option(None, "--port", help="Port (default 8000)."),
) -> None:
    """The REST API that serves models:/<name>@champion (docs at /docs)."""
    from mlops_kit.serving.server import serve as run_server

    run_server(get_settings(api_host=host, api_port=port))


@app.command()
def promote(
    version: int = typer.Argument(..., help="Model version to make champion."),
    reason: str = typer.Option(..., "--reason", help="Why (recorded as a model-version tag)."),
) -> None:
    """Point the `champion` alias at a version by hand; the reason and previous champion are recorded."""
    from mlops_kit.registry import promote as run_promote

    _report_move(lambda: run_promote(get_settings(), version, reason))


@app.command()
def rollback(
    reason: str = typer.Option(..., "--reason", help="Why (recorded as a model-version tag)."),
) -> None:
    """Move `champion` back to the version it replaced."""
    from mlops_kit.registry import rollback as run_rollback

    _report_move(lambda: run_rollback(get_settings(), reason))


@app.command("deploy-smoke")
def deploy_smoke(
    rollback: bool = typer.Option(
        True, "--rollback/--no-rollback", help="Roll the alias back when the smoke test fails."
    ),
) -> None:
    """CD: start the API on the champion, smoke-test it, roll the alias back if it fails (exit 1)."""
    from mlops_kit.delivery import deploy_smoke as run_smoke

    try:
        result = run_smoke(get_settings(), rollback_on_failure=rollback)
    except ValueError as exc:
        _fail(str(exc))
    for line in result.lines():
        typer.echo(line)
    if not result.ok:
        raise typer.Exit(1)


def _report_move(move) -> None:  # noqa: ANN001 - a zero-argument callable returning an AliasMove
    try:
        done = move()
    except ValueError as exc:
        _fail(str(exc))
    before = f"v{done.from_version}" if done.from_version else "(none)"
    typer.echo(
        f"{done.model_name}@champion: {before} -> v{done.to_version} ({done.by}: {done.reason})"
    )


@app.command("install-kernel")
def install_kernel() -> None:
    """Register the 'mlops-kit' Jupyter kernel (this environment's Python) for lab, papermill, nbval."""
    from mlops_kit.pipeline import install_kernel as run_install

    typer.echo(f"kernel installed: {run_install()}")


@app.command()
def status() -> None:
    """Where the kit keeps things: MLflow database, artifacts, executed notebooks, the champion."""
    from mlops_kit.registry import CHAMPION, champion_version

    settings = get_settings()
    typer.echo(
        describe(settings, champion_version(settings) if _has_store(settings) else None, CHAMPION)
    )


def _has_store(settings: Settings) -> bool:
    return not settings.embedded or settings.mlflow_db.exists()


def describe(settings: Settings, champion: str | None, alias: str) -> str:
    """A few lines saying where the kit's state lives."""
    runs = (
        sorted(p for p in settings.runs_dir.glob("*") if p.is_dir())
        if settings.runs_dir.exists()
        else []
    )
    lines = [
        f"MLflow tracking   {settings.tracking_uri if not settings.embedded else display_path(settings.mlflow_db)}",
        f"MLflow artifacts  {display_path(settings.artifact_root) if settings.embedded else '(server side)'}",
        f"executed runs     {display_path(runs[-1]) if runs else '(none yet)'}",
        f"registered model  {settings.model_name}@{alias} -> "
        + (f"version {champion}" if champion else "(no champion yet)"),
    ]
    return "\n".join(lines)


def main() -> None:
    """Entry point for `python -m mlops_kit`."""
    app()
