"""The local engine's memory stays bounded: a 300k-row file in small chunks costs what a small one does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_kit.config import Settings

pytestmark = pytest.mark.slow

MEASURE = """
import json, sys
from pathlib import Path
from mlops_kit.config import get_settings
from mlops_kit.batch import local, outputs, reader, run

def status(key):  # this process's memory in MB, from /proc (ru_maxrss outlives an exec)
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key))
    return int(line.split()[1]) / 1024

champion = run.load_model(get_settings())
def score(table, out):
    source = reader.open_source(table)
    paths = outputs.plan(out, source.path, "memory", overwrite=True)
    tally = local.score(champion, source, paths, threshold=0.7, chunk_rows=int(sys.argv[3]))
    paths.commit()
    return tally.scored
score(sys.argv[1], sys.argv[2] + ".warm.parquet")  # the first chunk's one-off costs
Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from here
before = status("VmRSS:")
scored = score(sys.argv[2], sys.argv[2] + ".parquet")
print(json.dumps({"scored": scored, "growth_mb": status("VmHWM:") - before}))
"""


def _penguins(held_out: pd.DataFrame, rows: int, seed: int = 0) -> pd.DataFrame:
    """`rows` penguin records resampled from the held-out season, measurements with noise."""
    rng = np.random.default_rng(seed)
    table = held_out.iloc[rng.integers(0, len(held_out), rows)].reset_index(drop=True)
    for column in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"):
        table[column] = (table[column] + rng.normal(0, 0.5, rows)).round(1)
    table.insert(0, "record_id", [f"r{i:07d}" for i in range(rows)])
    return table


def _growth(small: Path, big: Path, chunk_rows: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(small), str(big), str(chunk_rows)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_big_file_in_small_chunks_needs_no_more_memory(
    penguins: Settings, held_out: pd.DataFrame, tmp_path: Path
) -> None:
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    _penguins(held_out, 5_000).to_csv(small, index=False)
    _penguins(held_out, 300_000, seed=1).to_csv(big, index=False)  # ~17 MB of text
    chunked = _growth(small, big, chunk_rows=5_000)
    whole = _growth(small, big, chunk_rows=300_000)  # the same file as one chunk
    assert chunked["scored"] == whole["scored"] == 300_000
    # measured on the 2-core machine: ~45 MB in chunks of 5,000 rows, ~225 MB as one chunk
    assert chunked["growth_mb"] < 80, chunked
    assert whole["growth_mb"] > 2 * chunked["growth_mb"], (chunked, whole)
