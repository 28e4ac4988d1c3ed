"""`mlops-kit …` (also `python -m mlops_kit …`): one command per pipeline step."""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec

import typer
import yaml

from mlops_kit.config import Settings, display_path, get_settings, parse_data_path, parse_names
from mlops_kit.store.lock import WorkspaceBusy

app = typer.Typer(
    help="mlops-kit: the runnable kit of the talk 'MLOps' (TDC Innovation 2022).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_BAD_INPUT = 2
EXIT_GATE_REFUSED = 3
EXIT_BUSY = 75  # EX_TEMPFAIL: another command holds the workspace lock; retry later
P = ParamSpec("P")

# The same meanings as the notebook parameters and the MLOPS_KIT_* settings: each builds the
# settings' TableSpec (config.py), where None is "not given".
DataOpt = typer.Option(
    None, "--data", help="CSV file (default: the shipped Palmer penguins raw table)."
)
TargetOpt = typer.Option(None, "--target", help="Column to predict (default: species).")
FeaturesOpt = typer.Option(
    None,
    "--features",
    help="Feature columns, 'a, b, c' or [a, b, c] (default: the penguin measurements on the "
    "shipped table, the table's usable columns on yours).",
)
SplitOpt = typer.Option(
    None,
    "--split-column",
    help="Date/season column: its newest value is held out. 'none' for a seeded random split "
    "(default: date_egg on the shipped table; on yours, a random split unless it has date_egg).",
)


def _names(value: str | None) -> list[str] | None:
    try:
        names = parse_names(value)
    except ValueError as exc:
        _fail(str(exc))
    return list(names) if names else None


def _table_settings(
    data_path: object, target: object, features: object, split_column: object
) -> Settings:
    """The settings with the table the options name over the environment's (parsed here, once)."""
    from pydantic import ValidationError

    try:
        return get_settings(
            data_path=data_path, target=target, features=features, split_column=split_column
        )
    except ValidationError as exc:  # a list of names that cannot be read, say
        error = exc.errors()[0]
        _fail(f"{error['loc'][0]}: {error['msg'].removeprefix('Value error, ')}")


def _data_decisions(card) -> list[str]:  # noqa: ANN001 - a data.DataCard (imported lazily)
    """What the kit decided about the user's file: how it was read, which columns it left out."""
    lines = []
    read_as = card.read_as
    notes = []
    if read_as.get("separator", ",") != ",":
        notes.append(f"columns separated by {read_as['separator']!r}")
    if read_as.get("decimal_comma_columns"):
        notes.append(f"decimal comma in {len(read_as['decimal_comma_columns'])} column(s)")
    if read_as.get("encoding", "utf-8") != "utf-8":
        notes.append(f"{read_as['encoding']} text (not UTF-8)")
    if notes:
        lines.append(f"read as        {', '.join(notes)}")
    for column, reason in card.excluded_columns.items():
        lines.append(f"left out       {column}: {reason}")
    if card.record_key:
        lines.append(f"record key     {card.record_key} (the API sends it back with each answer)")
    return lines


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _exit_when_busy(command: Callable[P, None]) -> Callable[P, None]:
    """A command that waited in vain for the workspace lock exits 75, saying who holds it."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except WorkspaceBusy as exc:
            _fail(str(exc), EXIT_BUSY)

    return run


@app.command()
@_exit_when_busy
def prepare(
    data: Path = DataOpt,
    target: str = TargetOpt,
    features: str = FeaturesOpt,
    split_column: str = SplitOpt,
) -> None:
    """Data stage only: load, validate, clean, split and catalogue a table."""
    from mlops_kit.data import DataValidationError
    from mlops_kit.data import prepare as run_prepare

    settings = _table_settings(data, target, features, split_column)
    try:
        prepared = run_prepare(settings.table, settings)
    except DataValidationError as exc:
        _fail(str(exc))
    card = prepared.card
    for line in _data_decisions(card):
        typer.echo(line)
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
@_exit_when_busy
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
    from mlops_kit.training_pipeline import run_training_pipeline

    settings = _table_settings(data, target, features, split_column)
    try:
        result = run_training_pipeline(
            settings,
            candidates=_names(candidates),
            quality_gate=gate,
            gate_metric=metric,
        )
    except (DataValidationError, ValueError) as exc:
        _fail(str(exc))
    for line in _data_decisions(result.prepared.card):
        typer.echo(line)
    typer.echo(result.candidates_table().to_string(index=False))
    for candidate in result.candidates:
        if candidate.note:
            typer.echo(f"note: {candidate.note}")
    typer.echo("")
    typer.echo(result.summary().to_string(index=False, header=False))
    if fail_on_refusal and not (result.decision.promoted or result.decision.in_shadow):
        raise typer.Exit(EXIT_GATE_REFUSED)


@app.command()
@_exit_when_busy
def tune(
    trials: int = typer.Option(..., "--trials", help="Trials per candidate (at least 1)."),
    candidates: str = typer.Option(None, "--candidates", help="Comma-separated candidate names."),
    engine: str = typer.Option(
        "local", "--engine", help="local (trial after trial here) or spark (trials as Spark tasks)."
    ),
    master: str = typer.Option(
        None, "--master", help="With --engine spark: spark://HOST:PORT (default: local[2])."
    ),
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
    fail_on_refusal: bool = typer.Option(
        False,
        "--fail-on-refusal",
        help=f"Exit {EXIT_GATE_REFUSED} when the gate refuses the model.",
    ),
) -> None:
    """Search each candidate's hyper-parameters (Optuna, CV on the training split), then gate the best as `train` does."""
    from mlops_kit.data import DataValidationError
    from mlops_kit.spark_session import SparkError
    from mlops_kit.tune import run_tuning

    if master and engine != "spark":
        _fail("--master needs --engine spark")
    settings = _table_settings(data, target, features, split_column)
    try:
        result = run_tuning(
            settings,
            trials=trials,
            candidates=_names(candidates),
            engine=engine,
            master=master,
            quality_gate=gate,
            gate_metric=metric,
        )
    except (DataValidationError, ValueError, SparkError) as exc:
        _fail(str(exc))
    for line in _data_decisions(result.prepared.card):
        typer.echo(line)
    typer.echo(result.best_params_table().to_string(index=False))
    for search in result.searches:
        if search.note:
            typer.echo(f"note: {search.note}")
    typer.echo("")
    typer.echo(result.summary().to_string(index=False, header=False))
    if fail_on_refusal and not result.gated.decision.promoted:
        raise typer.Exit(EXIT_GATE_REFUSED)


@app.command()
@_exit_when_busy
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
    from mlops_kit.notebook_runner import resolve_notebooks, run_notebooks, summary_lines

    parameters = {}
    for item in param:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            _fail(f"parameter '{item}' must look like NAME=VALUE")
        parameters[name.strip()] = _yaml_value(value)
    _check_table_parameters(parameters)
    settings = get_settings()
    try:
        chosen = resolve_notebooks(notebooks)
        results = run_notebooks(chosen, parameters, settings, out_dir)
    except ValueError as exc:
        _fail(str(exc))
    for line in summary_lines(results):
        typer.echo(line)
    if not all(r.ok for r in results) or len(results) < len(chosen):
        raise typer.Exit(1)


# the notebooks' table parameters, and the settings each one is (the notebooks' get_settings)
TABLE_PARAMETERS = {
    "DATA_PATH": "data_path",
    "TARGET": "target",
    "FEATURES": "features",
    "SPLIT_COLUMN": "split_column",
}


def _check_table_parameters(parameters: dict[str, object]) -> None:
    """Refuse an unreadable table before any notebook runs; the data path as seen from here."""
    _table_settings(
        **{name: parameters.get(parameter) for parameter, name in TABLE_PARAMETERS.items()}
    )
    if parameters.get("DATA_PATH"):  # the kernels run in notebooks/, not in the caller's folder
        parameters["DATA_PATH"] = str(parse_data_path(parameters["DATA_PATH"]))


def _yaml_value(text: str) -> object:
    """A -p value as YAML (0.95, true, [a, b]); text that is not YAML stays text."""
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


@app.command()
def serve(
    host: str = typer.Option(None, "--host", help="Interface to listen on (default 127.0.0.1)."),
    port: int = typer.Option(None, "--port", help="Port (default 8000)."),
    workers: int = typer.Option(
        1, "--workers", min=1, help="API processes on the one port, each logging its predictions."
    ),
    model_uri: str = typer.Option(
        None,
        "--model-uri",
        help="Serve this model package folder (make package) or MLflow model URI, without the "
        "registry (default: models:/<name>@champion, followed as it moves).",
    ),
    alias: str = typer.Option(
        None, "--alias", help="Serve and follow this registry alias (default: champion; staging…)."
    ),
    shadow: str = typer.Option(
        None,
        "--shadow",
        help="Also score every request with this alias (challenger…) off the request path; its "
        "answers are logged beside, never sent (mlops-kit compare).",
    ),
) -> None:
    """The REST API that serves models:/<name>@champion (docs at /docs, metrics at /metrics)."""
    # Start-up (imports, the model load) makes ~300k objects that live as long as the process;
    # without the cyclic collector's passes over them the API answers ~0.5 s sooner (3.4 -> 2.9 s,
    # 2-core machine). The app freezes them and turns the collector back on once the model is
    # loaded (``serving.app.lifespan``).
    gc.disable()
    from mlops_kit.serving.server import serve as run_server

    if model_uri and Path(model_uri).expanduser().exists():
        model_uri = _checked_package(Path(model_uri).expanduser().resolve())
    fixed = {"model_uri": model_uri, "reload_interval": 0} if model_uri else {}  # nothing to poll
    settings = get_settings(api_host=host, api_port=port, alias=alias, shadow_alias=shadow, **fixed)
    run_server(settings, workers=workers)


def _checked_package(folder: Path) -> str:
    """A local model folder; a model package is refused when its files differ from its manifest."""
    from mlops_kit.config import MODEL_MANIFEST
    from mlops_kit.packaging import read_package

    if (folder / MODEL_MANIFEST).is_file():
        try:
            read_package(folder)
        except ValueError as exc:
            _fail(f"{exc}: rebuild it (make package)")
    return str(folder)


@app.command()
def score(
    data: Path = typer.Option(
        ..., "--data", help="CSV or Parquet file, or a folder of parts, to score."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Parquet file to write; refused rows go beside it to OUT.rejects.parquet "
        "(scored.parquet -> scored.rejects.parquet).",
    ),
    alias: str = typer.Option(
        None, "--alias", help="Score with this registry alias (default: champion)."
    ),
    model_uri: str = typer.Option(
        None,
        "--model-uri",
        help="Score with this model package folder (make package) or MLflow model URI.",
    ),
    engine: str = typer.Option(
        "local",
        "--engine",
        help="Where to score: local (this process) or spark (mlflow's spark_udf on Spark).",
    ),
    master: str = typer.Option(
        None,
        "--master",
        help="--engine spark: the cluster's master, spark://HOST:PORT (`mlops-kit spark up` "
        "prints it); default local[2].",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace OUT and its rejects file if they exist."
    ),
    chunk_rows: int = typer.Option(
        200_000, "--chunk-rows", min=1, help="Rows validated and scored at a time (memory)."
    ),
) -> None:
    """Score a table of any size with the champion: every input column kept, plus the answers."""
    from mlops_kit import spark_session
    from mlops_kit.batch import columns, outputs, reader, run, validate
    from mlops_kit.config import CHAMPION
    from mlops_kit.spark_session import SparkError

    if alias and model_uri:
        _fail("choose one of --alias and --model-uri")
    if master and engine != "spark":
        _fail(f"--master is for --engine spark (got --engine {engine})")
    if engine == "spark":
        try:  # before any run starts: pyspark, Java and the master answer
            spark_session.check(master)
        except SparkError as exc:
            _fail(str(exc))
    if model_uri and Path(model_uri).expanduser().exists():
        model_uri = _checked_package(Path(model_uri).expanduser().resolve())
    refused = (
        reader.InputError,
        outputs.OutputError,
        validate.MissingInputs,
        columns.OutputClash,
        run.NoModel,
        run.UnknownEngine,
        SparkError,
    )
    try:
        result = run.score_table(
            get_settings(),
            data,
            out,
            alias=alias or CHAMPION,
            model_uri=model_uri,
            engine=engine,
            overwrite=overwrite,
            chunk_rows=chunk_rows,
            progress=True,
            engine_options={"master": master} if engine == "spark" else None,
        )
    except refused as exc:
        _fail(str(exc))
    typer.echo(result.summary())


@app.command()
def package(
    dist: Path = typer.Option(Path("dist"), "--dist", help="Folder to write the package into."),
) -> None:
    """The champion as a model package in dist/: MLflow model, Dockerfile, manifest with sha256."""
    from mlops_kit.packaging import package_champion

    try:
        written = package_champion(get_settings(), dist.expanduser().resolve())
    except ValueError as exc:
        _fail(str(exc))
    for line in written.lines():
        typer.echo(line)


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

    _report_delivery(lambda: run_smoke(get_settings(), rollback_on_failure=rollback))


@app.command()
def deploy(
    env: str = typer.Option(..., "--env", help="staging, then production."),
    version: str = typer.Option(
        None,
        "--version",
        help="Version to deliver (staging: default the newest that passed the gate; "
        "production: default the one in staging).",
    ),
    port: int = typer.Option(None, "--port", help="The environment's API port (default: its own)."),
    require_shadow: bool = typer.Option(
        False,
        "--require-shadow",
        help="production: refuse a version that has not scored live traffic in shadow.",
    ),
) -> None:
    """CD through environments: staging (smoke test + soak), then production (smoke test, rollback)."""
    from mlops_kit.config import STAGING
    from mlops_kit.deploy import environment, to_production, to_staging

    try:
        target = environment(env, port)
    except ValueError as exc:
        _fail(str(exc))
    if env == STAGING:
        _report_delivery(lambda: to_staging(get_settings(), target, version))
    else:
        _report_delivery(lambda: to_production(get_settings(), target, version, require_shadow))


def _report_delivery(deliver) -> None:  # noqa: ANN001 - returns a SmokeResult or a Deployment
    """Run a delivery; print its lines; exit 2 when it was refused, 1 when a check failed."""
    try:
        result = deliver()
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


@app.command("talk-check")
def talk_check(
    notebooks: list[str] = typer.Argument(None, help="Only these notebooks (default: all)."),
) -> None:
    """The evening before the talk: setup, notebooks, API, /docs in chromium, JupyterLab, MLflow UI; GO or NO-GO."""
    from mlops_kit.talk.check import run_talk_check

    typer.echo("talk check (in a temporary workspace: your demo state is not touched)")
    result = run_talk_check(notebooks or None)
    for line in result.lines():
        typer.echo(line)
    if not result.go:
        raise typer.Exit(1)


@app.command("install-kernel")
def install_kernel() -> None:
    """Register the 'mlops-kit' Jupyter kernel (this environment's Python) for lab, papermill, nbval."""
    from mlops_kit.notebook_runner import install_kernel as run_install

    typer.echo(f"kernel installed: {run_install()}")


@app.command()
def status() -> None:
    """Where the kit keeps things: MLflow database, artifacts, executed notebooks, the champion."""
    from mlops_kit.registry import CHAMPION, champion_version

    settings = get_settings()
    typer.echo(describe(settings, champion_version(settings), CHAMPION))


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


EXIT_RETRAIN_DUE = 10  # monitor: low confidence or input drift crossed its threshold


def _since(value: str | None):  # a datetime (UTC) or None; pandas is imported lazily here
    """'24h', '30m', '7d', '1h30m' (that long ago) or an ISO timestamp (UTC unless it says so)."""
    import pandas as pd

    if not value:
        return None
    text = value.strip()
    if text.isdigit():  # pandas would read nanoseconds
        _fail(f"--since needs a unit: {text}m, {text}h or {text}d, not '{value}'")
    try:  # a duration as pandas reads it (its day unit is 'D': '7d' is still deprecated)
        ago = pd.Timedelta(text.replace("d", "D"))
    except ValueError:
        try:
            when = pd.Timestamp(text)
        except ValueError:
            _fail(f"--since must look like 24h, 30m, 7d or an ISO timestamp, not '{value}'")
        return (when.tz_localize("UTC") if when.tzinfo is None else when).to_pydatetime()
    return (pd.Timestamp.now("UTC") - ago).to_pydatetime()


SinceOpt = typer.Option(
    None, "--since", help="Only predictions since then: 24h, 30m, 7d or an ISO timestamp."
)
LastOpt = typer.Option(None, "--last", help="Only the newest N predictions.")


@app.command()
def simulate(
    url: str = typer.Option(None, "--url", help="The API (default: http://127.0.0.1:8000)."),
    batches: int = typer.Option(4, "--batches", help="How many requests to send."),
    batch_size: int = typer.Option(25, "--batch-size", help="Records per request."),
    shift: str = typer.Option(
        "none",
        "--shift",
        help="none; add:COLUMN (a number reads --amount more); mix:COLUMN=VALUE (a share "
        "--amount of records get that category); the penguins' calliper (mm), scale (g), colony.",
    ),
    amount: float = typer.Option(
        None,
        "--amount",
        help="Size of the shift, in its unit (default: the preset's; add: two standard "
        "deviations; mix: 0.5).",
    ),
    seed: int = typer.Option(42, "--seed", help="Same seed, same records in the same order."),
    phase: str = typer.Option("", "--phase", help="A name for this run, kept with the truth."),
) -> None:
    """Send the champion's held-out records to the API, optionally shifted; truth kept aside."""
    from mlops_kit.simulator.traffic import TrafficError
    from mlops_kit.simulator.traffic import simulate as run_simulate

    settings = get_settings()
    target = url or f"http://{settings.api_host}:{settings.api_port}"
    try:
        run = run_simulate(
            settings,
            target,
            batches=batches,
            batch_size=batch_size,
            shift=shift,
            amount=amount,
            seed=seed,
            phase=phase,
        )
    except ValueError as exc:
        _fail(str(exc))
    except TrafficError as exc:
        _fail(str(exc), 1)
    typer.echo(f"shift          {run.description}")
    typer.echo(run.batch_table().to_string(index=False))
    typer.echo(f"truth kept in  {display_path(run.truth_path)} (never sent to the API)")


SourceOpt = typer.Option(
    "api",
    "--source",
    help="Which traffic: api (the API's prediction log) or batch (the outputs of mlops-kit score).",
)


@app.command()
def monitor(
    since: str = SinceOpt,
    last: int = LastOpt,
    recent: int = typer.Option(
        None, "--recent", help="Predictions the verdict looks at (default 100)."
    ),
    segment: str = typer.Option(
        "25", "--segment", help="History step: a number of predictions, or a time window (1h)."
    ),
    out: Path = typer.Option(
        None,
        "--out",
        help="Folder for the report and plots (default: workspace/monitoring/<time>).",
    ),
    mlflow_log: bool = typer.Option(
        True, "--mlflow/--no-mlflow", help="Also log the report to MLflow."
    ),
    source: str = SourceOpt,
) -> None:
    """Confidence, low-confidence share, class mix and input drift from the prediction log.

    Exits 10 when retraining is due (low-confidence share or drift over its threshold), so a
    scheduler can trigger capture, labelling and retraining; 0 otherwise.
    """
    import json
    from datetime import UTC, datetime

    from mlops_kit.monitoring.mlflow_log import log_report
    from mlops_kit.monitoring.monitor import monitor as run_monitor
    from mlops_kit.monitoring.plots import figures as monitoring_figures

    settings = get_settings()
    try:
        report = run_monitor(
            settings,
            since=_since(since),
            last=last,
            recent=recent,
            segment=int(segment) if segment.isdigit() else segment,
            source=source,
        )
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    typer.echo(report.text())
    if report.predictions == 0:
        return
    folder = out or settings.workspace / "monitoring" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    figures = monitoring_figures(report)
    for name, fig in figures.items():
        fig.savefig(folder / name, dpi=100)
    (folder / "report.txt").write_text(report.text() + "\n")
    (folder / "report.json").write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    typer.echo(f"\nreport and plots in {display_path(folder)}")
    if mlflow_log:
        log_report(report, settings, figures)
        typer.echo("logged to MLflow as a 'monitoring' run")
    if report.retrain_due:
        raise typer.Exit(EXIT_RETRAIN_DUE)


@app.command()
def compare(
    since: str = SinceOpt,
    last: int = LastOpt,
    promote: bool = typer.Option(
        False,
        "--promote",
        help="Then give `champion` to the challenger, if it passed the gate and scored live "
        "traffic in shadow (retrain --shadow-first; serve --shadow challenger).",
    ),
) -> None:
    """The served model against the shadow (serve --shadow) on the same requests, side by side."""
    from mlops_kit.compare import compare as run_compare
    from mlops_kit.compare import promote_challenger

    settings = get_settings()
    result = run_compare(settings, since=_since(since), last=last)
    if not result.predictions:
        typer.echo("nothing to compare: no request was scored in shadow (mlops-kit serve --shadow)")
    else:
        typer.echo(result.summary().to_string(index=False, header=False))
        typer.echo("")
        typer.echo(result.table().to_string(index=False))
    if promote:
        try:
            move = promote_challenger(settings, since=_since(since))
        except ValueError as exc:
            _fail(str(exc))
        typer.echo(f"champion: v{move.from_version} -> v{move.to_version} ({move.reason})")


@app.command()
@_exit_when_busy
def capture(
    since: str = SinceOpt,
    last: int = LastOpt,
    threshold: float = typer.Option(
        None, "--threshold", help="Capture below this confidence (default: the API's own flag)."
    ),
    source: str = SourceOpt,
) -> None:
    """Put low-confidence predictions no review set holds yet into a new, versioned review set."""
    from mlops_kit.capture import capture as run_capture

    settings = get_settings()
    try:
        review = run_capture(
            settings, since=_since(since), last=last, threshold=threshold, source=source
        )
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    if not len(review):
        typer.echo("no new low-confidence predictions to capture")
        return
    typer.echo(
        f"review set {review.version}: {len(review)} case(s) in the store ({_store_name(settings)})"
    )
    typer.echo(review.table().head(10).to_string(index=False))
    typer.echo("next: mlops-kit label --export (a CSV to fill in) or --simulated-reviewer (demo)")


@app.command()
@_exit_when_busy
def label(
    review_set: str = typer.Option(
        None, "--review-set", help="Review set version (default: the newest)."
    ),
    export: bool = typer.Option(False, "--export", help="Write the CSV a human fills in."),
    to: Path = typer.Option(None, "--to", help="Where --export writes (default: in the set)."),
    from_csv: Path = typer.Option(
        None, "--import", help="Read a filled-in CSV (its `label` column)."
    ),
    simulated: bool = typer.Option(
        False,
        "--simulated-reviewer",
        help="Demo stand-in for a human: label with the simulator's kept-aside truth.",
    ),
) -> None:
    """Label a review set: export a CSV for a human, import it back, or use the simulated reviewer."""
    from mlops_kit.capture import load_review_set
    from mlops_kit.labels import LabelError, export_for_labelling, import_labels
    from mlops_kit.simulator.reviewer import label_with_simulator_truth

    if sum([export, from_csv is not None, simulated]) != 1:
        _fail("choose one of --export, --import FILE or --simulated-reviewer")
    settings = get_settings()
    try:
        review = load_review_set(settings, review_set)
        if export:
            path = export_for_labelling(review, to)
            typer.echo(f"{len(review)} case(s) to label in {display_path(path)}")
            typer.echo("fill in the `label` column, then: mlops-kit label --import " + str(path))
            return
        if from_csv is not None:
            done = import_labels(settings, review, from_csv)
        else:
            done = label_with_simulator_truth(settings, review)
    except (LabelError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"review set {review.version}")
    typer.echo(done.summary().to_string(index=False, header=False))


@app.command()
@_exit_when_busy
def retrain(
    holdout: float = typer.Option(
        None, "--holdout", help="Share of new labelled cases kept out of training (default 0.3)."
    ),
    candidates: str = typer.Option(None, "--candidates", help="Comma-separated candidate names."),
    gate: float = typer.Option(None, "--gate", help="Quality gate: minimum score."),
    metric: str = typer.Option(None, "--metric", help="Gate metric: f1_macro or accuracy."),
    fail_on_refusal: bool = typer.Option(
        False, "--fail-on-refusal", help=f"Exit {EXIT_GATE_REFUSED} when the champion stays."
    ),
    shadow_first: bool = typer.Option(
        False,
        "--shadow-first",
        help="A better challenger gets the alias `challenger`, not `champion`: it scores live "
        "traffic in shadow first (serve --shadow challenger), then compare --promote.",
    ),
) -> None:
    """Train a challenger on the champion's data + labelled cases; promote it only if it is better."""
    from mlops_kit.retrain import retrain as run_retrain

    try:
        result = run_retrain(
            get_settings(),
            holdout=holdout,
            candidates=_names(candidates),
            quality_gate=gate,
            gate_metric=metric,
            shadow_first=shadow_first,
        )
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(result.comparison().to_string(index=False))
    typer.echo("")
    typer.echo(result.summary().to_string(index=False, header=False))
    if fail_on_refusal and not (result.decision.promoted or result.decision.in_shadow):
        raise typer.Exit(EXIT_GATE_REFUSED)


# ---------------------------------------------------------------- a Spark cluster on this machine

spark_app = typer.Typer(
    help="A Spark standalone cluster on 127.0.0.1 (a master and two workers from the pyspark "
    "package), for `mlops-kit score --engine spark --master URL`.",
    no_args_is_help=True,
)
app.add_typer(spark_app, name="spark")
SparkRootOpt = typer.Option(
    None, "--root", help="Folder of the cluster's state and logs (default: workspace/spark)."
)


def _spark_root(root: Path | None) -> Path:
    return root or get_settings().workspace / "spark"


@spark_app.command("up")
def spark_up(
    root: Path = SparkRootOpt,
    port: int = typer.Option(7077, "--port", help="The master's port on 127.0.0.1."),
    ui_port: int = typer.Option(8080, "--ui-port", help="The master's web UI port on 127.0.0.1."),
    workers: int = typer.Option(2, "--workers", min=1, help="Workers, one core each."),
    worker_memory: str = typer.Option("1g", "--worker-memory", help="Memory each worker offers."),
) -> None:
    """Start the master and its workers (what is not running yet); print the master URL."""
    from mlops_kit import spark_cluster

    try:
        cluster, news = spark_cluster.up(
            _spark_root(root), port, ui_port, workers=workers, worker_memory=worker_memory
        )
    except spark_cluster.ClusterError as exc:
        _fail(str(exc), 1)
    for line in news:
        typer.echo(line, err=True)  # stdout carries only the master URL, for $(...)
    typer.echo(cluster.master_url)


@spark_app.command("down")
def spark_down(root: Path = SparkRootOpt) -> None:
    """Stop the workers and the master."""
    from mlops_kit import spark_cluster

    for line in spark_cluster.down(_spark_root(root)):
        typer.echo(line)


@spark_app.command("status")
def spark_status(root: Path = SparkRootOpt) -> None:
    """The master URL, its web UI and how many workers are alive."""
    from mlops_kit import spark_cluster

    for name, value in spark_cluster.status(_spark_root(root)).items():
        typer.echo(f"{name:<8} {value}")


# ---------------------------------------------------------------- team mode (PostgreSQL + mlflow server)

team_app = typer.Typer(
    help="A team's stack on this machine: PostgreSQL (MLflow's and the kit's store) and mlflow "
    'server. `eval "$(mlops-kit team up)"` points this shell at it.',
    no_args_is_help=True,
)
app.add_typer(team_app, name="team")
TeamRootOpt = typer.Option(
    None, "--root", help="Folder of the stack's data and logs (default: workspace/team)."
)


def _team_root(root: Path | None) -> Path:
    return root or get_settings().workspace / "team"


@team_app.command("up")
def team_up(
    root: Path = TeamRootOpt,
    pg_port: int = typer.Option(55432, "--pg-port", help="PostgreSQL's port on 127.0.0.1."),
    mlflow_port: int = typer.Option(5000, "--mlflow-port", help="mlflow server's port."),
    prometheus_port: int = typer.Option(
        9090, "--prometheus-port", help="Prometheus' port (it scrapes the API on 8000)."
    ),
    no_prometheus: bool = typer.Option(False, "--no-prometheus", help="Start no Prometheus."),
) -> None:
    """Start PostgreSQL, mlflow server and Prometheus (what is not running yet); print the exports."""
    from mlops_kit import team

    try:
        stack, news = team.up(
            _team_root(root),
            pg_port=pg_port,
            mlflow_port=mlflow_port,
            prometheus_port=None if no_prometheus else prometheus_port,
        )
    except team.TeamError as exc:
        _fail(str(exc), 1)
    for line in news:
        typer.echo(line, err=True)  # stdout carries only the exports, for eval
    typer.echo(stack.exports())


@team_app.command("down")
def team_down(root: Path = TeamRootOpt) -> None:
    """Stop Prometheus, mlflow server and PostgreSQL; their data stays for the next `team up`."""
    from mlops_kit import team

    try:
        news = team.down(_team_root(root))
    except team.TeamError as exc:
        _fail(str(exc), 1)
    for line in news:
        typer.echo(line)


@team_app.command("status")
def team_status(root: Path = TeamRootOpt) -> None:
    """Whether PostgreSQL, mlflow server and Prometheus are up, and where."""
    from mlops_kit import team

    try:
        state = team.status(_team_root(root))
    except team.TeamError as exc:
        _fail(str(exc), 1)
    for name, value in state.items():
        typer.echo(f"{name:<10} {value}")


def main() -> None:
    """Entry point for `python -m mlops_kit`."""
    app()


def _store_name(settings: Settings) -> str:
    """The store's database as a person recognises it: the SQLite file, or the URL without password."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.store)
    if url.get_backend_name() == "sqlite" and url.database:
        return display_path(url.database)
    return url.render_as_string(hide_password=True)
