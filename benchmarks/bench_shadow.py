"""The shadow's cost on the request path: one-record /predict latency with and without a shadow.

    .venv/bin/python benchmarks/bench_shadow.py [--requests 500] [--rounds 3]

Trains a champion (v1) and a challenger (v2, without `sex`) in a throwaway workspace, starts the
API twice side by side — one plain, one with `--shadow challenger` — and sends the same
one-record requests to each in turns, round after round (the machine is noisy: the ratio within a
round is what counts). Prints p50 and p99 of each, and the p50 ratio (target: within 1.10).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from mlops_kit.config import PENGUIN_FEATURES, Settings
from mlops_kit.services import start_api
from mlops_kit.training_pipeline import run_training_pipeline

RECORD = {
    "island": "Dream",
    "bill_length_mm": 46.5,
    "bill_depth_mm": 17.9,
    "flipper_length_mm": 192.0,
    "body_mass_g": 3500.0,
    "sex": "female",
}


def latencies(url: str, requests: int) -> np.ndarray:
    """Milliseconds of `requests` one-record requests sent one after the other."""
    out = []
    with httpx.Client(base_url=url, timeout=10.0) as http:
        for _ in range(20):  # warm-up
            http.post("/predict", json=RECORD)
        for _ in range(requests):
            started = time.perf_counter()
            http.post("/predict", json=RECORD).raise_for_status()
            out.append((time.perf_counter() - started) * 1000)
    return np.asarray(out)


def main() -> None:
    """Train, start both APIs, measure in turns, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(workspace=Path(tmp) / "workspace", runs_dir=Path(tmp) / "runs")
        run_training_pipeline(settings, candidates=["logistic_regression"])
        no_sex = settings.table.with_features([f for f in PENGUIN_FEATURES if f != "sex"])
        run_training_pipeline(
            settings, no_sex, candidates=["logistic_regression"], quality_gate=0.0
        )  # v2: not better, so it gets the alias challenger
        plain_settings = settings.model_copy(update={"reload_interval": 0})
        shadow_settings = plain_settings.model_copy(update={"shadow_alias": "challenger"})
        with start_api(plain_settings) as plain, start_api(shadow_settings) as shadowed:
            print(
                f"{'round':<6} {'plain p50':>10} {'shadow p50':>11} {'ratio':>6}  p99 plain/shadow"
            )
            for round_ in range(1, args.rounds + 1):
                a = latencies(plain.url, args.requests)
                b = latencies(shadowed.url, args.requests)
                ratio = np.median(b) / np.median(a)
                print(
                    f"{round_:<6} {np.median(a):>8.2f}ms {np.median(b):>9.2f}ms {ratio:>6.2f}  "
                    f"{np.percentile(a, 99):.1f} / {np.percentile(b, 99):.1f} ms"
                )
            shadow = httpx.get(f"{shadowed.url}/health").json()["shadow"]
            print(f"the shadow scored {shadow['scored']} records, skipped {shadow['skipped']}")


if __name__ == "__main__":
    main()
