"""Production traffic: held-out records of the champion's table, optionally shifted, sent to the API.

The records are the rows the champion never trained on (for the penguins: the newest field
season), in a seeded order, changed by a shift (``shifts.py``) the way things change in the field.
The true class of every record sent is kept aside in the workspace (``traffic/<run>.csv``, keyed
by request id and position in the batch): it stands in for the label a human reviewer gives later
(``reviewer.py``). It is never sent to the API.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from mlops_kit.config import Settings
from mlops_kit.data import PreparedData, prepare
from mlops_kit.dataset import ORIGIN, PRODUCTION, SEASON
from mlops_kit.registry import champion_data
from mlops_kit.simulator.shifts import TRUTH, apply_shift, parse_shift, shift_amount

KEY = ["request_id", "record_index"]  # how a prediction in the log is matched to its truth


class TrafficError(RuntimeError):
    """The API could not be reached or refused a batch; the message says which and why."""


def _held_out(settings: Settings) -> tuple[PreparedData, pd.DataFrame]:
    """The champion's data and its held-out rows of the table (production cases left out).

    The champion's data version says which table and which rows were held out of its training;
    production cases a retraining added are not replayed. Without a champion: the configured table.
    """
    prepared = _champion_data(settings) or prepare(settings.table, settings, write=False)
    held_out = prepared.eval
    if ORIGIN in held_out:
        held_out = held_out[held_out[ORIGIN].fillna(SEASON) != PRODUCTION]
    return prepared, held_out


def held_out_season(settings: Settings) -> pd.DataFrame:
    """Every held-out row's features, missing values included, and its row of the raw table."""
    prepared, held_out = _held_out(settings)
    out = held_out[prepared.spec.features].copy()
    out.insert(0, "source_row", held_out.index.to_numpy())
    return out.reset_index(drop=True)


def season_records(settings: Settings) -> pd.DataFrame:
    """The held-out rows of the champion's table with every number present (the API requires them)."""
    prepared, held_out = _held_out(settings)
    season = held_out.dropna(subset=prepared.spec.numeric)
    out = season[prepared.spec.features].copy()
    out[TRUTH] = season[prepared.spec.target].astype(str)
    out["source_row"] = season.index.to_numpy()
    if out.empty:
        raise ValueError("the held-out rows have no record with every number present to send")
    return out.reset_index(drop=True)


def _champion_data(settings: Settings) -> PreparedData | None:
    """The data version the champion learnt from, where the workspace has one."""
    try:
        return champion_data(settings)[1]
    except ValueError:  # no champion yet
        return None


def draw_traffic(
    season: pd.DataFrame,
    n: int,
    *,
    shift: str = "none",
    amount: float | None = None,
    seed: int = 42,
) -> pd.DataFrame:
    """n records in a seeded order: passes through the held-out rows without repeats, then shifted."""
    if n < 1:
        raise ValueError("traffic needs at least one record")
    rng = np.random.default_rng(seed)
    passes = -(-n // len(season))
    order = np.concatenate([rng.permutation(len(season)) for _ in range(passes)])[:n]
    drawn = season.iloc[order].reset_index(drop=True)
    return apply_shift(drawn, shift, amount, rng=rng, pool=season)


def _records(frame: pd.DataFrame, features: list[str]) -> list[dict[str, object]]:
    """JSON-ready records: numbers as floats, missing categories as null."""
    rows = frame[features].astype(object).where(frame[features].notna(), None)
    return rows.to_dict("records")


@dataclass
class TrafficRun:
    """One simulator run: what was sent (with the kept-aside truth) and what the API answered."""

    run_id: str
    phase: str
    shift: str
    amount: float
    seed: int
    started_at: datetime
    records: pd.DataFrame
    truth_path: Path
    features: list[str] = field(default_factory=list)
    description: str = ""  # the shift in words

    def batch_table(self) -> pd.DataFrame:
        """One row per batch: size, serving version, confidence, low-confidence share, accuracy."""
        r = self.records
        table = (
            r.assign(correct=r["predicted"] == r[TRUTH])
            .groupby("batch", sort=True)
            .agg(
                records=("predicted", "size"),
                model_version=("model_version", lambda v: ", ".join(sorted(set(v)))),
                mean_confidence=("confidence", "mean"),
                low_confidence_share=("low_confidence", "mean"),
                accuracy=("correct", "mean"),
            )
            .reset_index()
        )
        return table.round({"mean_confidence": 3, "low_confidence_share": 3, "accuracy": 3})

    def summary(self) -> dict[str, object]:
        """The whole run in one row: phase, shift, records, confidence, low share, accuracy."""
        r = self.records
        return {
            "phase": self.phase,
            "shift": self.shift if self.shift == "none" else f"{self.shift} {self.amount:g}",
            "records": len(r),
            "model_version": ", ".join(sorted(set(r["model_version"]))),
            "mean_confidence": round(float(r["confidence"].mean()), 3),
            "low_confidence_share": round(float(r["low_confidence"].mean()), 3),
            "accuracy": round(float((r["predicted"] == r[TRUTH]).mean()), 3),
        }


def truth_dir(settings: Settings) -> Path:
    """Where the simulator keeps the true labels of what it sent."""
    return settings.workspace / "traffic"


def write_truth(
    path: Path, sent: pd.DataFrame, features: list[str], meta: dict[str, object]
) -> Path:
    """Keep what was sent, keyed by request id and position, with its true class (never sent)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = [c for c in [*KEY, "batch", *features, TRUTH, "source_row"] if c in sent]
    sent[columns].assign(**meta).to_csv(path, index=False)
    return path


def read_truth(settings: Settings) -> pd.DataFrame:
    """Every record the simulator sent, keyed by request id and position, with its true class."""
    files = sorted(truth_dir(settings).glob("*.csv"))
    if not files:
        return pd.DataFrame(columns=[*KEY, TRUTH])
    kept_as_text = {"request_id": str, TRUTH: str}  # a class "0" stays "0", as the API answers
    frames = [pd.read_csv(f, dtype=kept_as_text, keep_default_na=False) for f in files]
    return pd.concat(frames, ignore_index=True)


def _post(http: httpx.Client, url: str, records: list[dict], request_id: str) -> dict:
    try:
        response = http.post("/predict", json=records, headers={"X-Request-ID": request_id})
    except httpx.TransportError as exc:
        raise TrafficError(
            f"the API at {url} does not answer ({type(exc).__name__}); start it with "
            "`mlops-kit serve` or give its address with --url"
        ) from None
    if response.status_code != 200:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        raise TrafficError(f"the API refused batch {request_id}: {response.status_code} {message}")
    return response.json()


def _wait_logged(http: httpx.Client, timeout: float) -> None:
    """Wait until the API has written every served prediction to its log, and its shadow's
    answers to theirs (best effort)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            health = http.get("/health").json()
        except (httpx.HTTPError, ValueError):
            return
        shadow = health.get("shadow") or {}
        behind = (
            health.get("prediction_log", {}).get("pending", 0)
            + shadow.get("queued_rows", 0)
            + shadow.get("log", {}).get("pending", 0)
        )
        if behind <= 0:
            return
        time.sleep(0.05)


def simulate(
    settings: Settings,
    url: str,
    *,
    batches: int = 4,
    batch_size: int = 25,
    shift: str = "none",
    amount: float | None = None,
    seed: int = 42,
    phase: str = "",
    timeout: float = 30.0,
) -> TrafficRun:
    """Send `batches` batches of records to the API; keep their truth aside; return what it answered."""
    if batches < 1 or batch_size < 1:
        raise ValueError("batches and batch size must be at least 1")
    season = season_records(settings)
    parsed = parse_shift(shift, season)
    value = shift_amount(parsed, amount, season)
    features = [c for c in season.columns if c not in (TRUTH, "source_row")]
    sent = draw_traffic(season, batches * batch_size, shift=shift, amount=value, seed=seed)
    run_id = uuid.uuid4().hex[:12]
    started_at = datetime.now(UTC)
    sent["batch"] = np.arange(len(sent)) // batch_size + 1
    sent["request_id"] = [f"sim-{run_id}-{b:04d}" for b in sent["batch"]]
    sent["record_index"] = np.arange(len(sent)) % batch_size
    answers: list[dict] = []
    truth_path = truth_dir(settings) / f"{started_at:%Y%m%dT%H%M%S}-{run_id}.csv"
    try:
        with httpx.Client(base_url=url, timeout=timeout) as http:
            for request_id, batch in sent.groupby("request_id", sort=False):
                body = _post(http, url, _records(batch, features), str(request_id))
                answers.extend(body["predictions"])
            _wait_logged(http, timeout)
    finally:
        done = sent.iloc[: len(answers)]
        if len(done):
            meta = {"run_id": run_id, "phase": phase, "shift": shift, "amount": value, "seed": seed}
            write_truth(truth_path, done, features, meta)
    got = pd.DataFrame(answers)[["predicted", "confidence", "low_confidence", "model_version"]]
    records = pd.concat([sent.reset_index(drop=True), got], axis=1)
    return TrafficRun(
        run_id,
        phase,
        parsed.name,
        value,
        seed,
        started_at,
        records,
        truth_path,
        features=features,
        description=parsed.describe(value),
    )
