"""Time `make demo`'s headless notebook run against a bare kernel start: each notebook, its slowest cells, the whole run.

Run: .venv/bin/python benchmarks/bench_notebooks.py [--repeat N] [--cells K]
Everything runs in a fresh temporary workspace; the figures are printed, nothing is asserted.
The ratios (x a bare kernel start) are what to compare between machines and runs: seconds move
with the machine's load, ratios much less.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import nbformat

# issue #18 item 6: no cell over 10x a bare kernel start, the whole headless run at most 60x
CELL_TARGET = 10.0
RUN_TARGET = 60.0


def bare_kernel_start(kernel: str) -> float:
    """Seconds to start the kit's kernel, run nothing, and shut it down (jupyter_client)."""
    from jupyter_client.manager import start_new_kernel

    start = time.perf_counter()
    km, kc = start_new_kernel(kernel_name=kernel)
    kc.stop_channels()
    km.shutdown_kernel(now=True)
    return time.perf_counter() - start


def bare_papermill(kernel: str, folder: Path) -> float:
    """Seconds for papermill to run a one-cell notebook that does nothing."""
    import papermill as pm

    empty = folder / "empty.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("pass")])
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nbformat.write(nb, empty)
    start = time.perf_counter()
    pm.execute_notebook(
        str(empty), str(folder / "empty.out.ipynb"), kernel_name=kernel, progress_bar=False
    )
    return time.perf_counter() - start


def cell_seconds(executed: Path) -> list[tuple[int, float, str]]:
    """(index, seconds, first line) of each code cell of a notebook papermill executed."""
    nb = nbformat.read(executed, as_version=4)
    cells = []
    for index, cell in enumerate(nb.cells):
        duration = cell.metadata.get("papermill", {}).get("duration")
        if cell.cell_type == "code" and duration is not None:
            first = next((line for line in cell.source.splitlines() if line.strip()), "")
            cells.append((index, float(duration), first))
    return cells


def run_once(folder: Path, i: int) -> tuple[float, dict[str, float], dict[str, list]]:
    """One headless run of every notebook: total seconds, seconds per notebook, cells per notebook."""
    from mlops_kit.config import get_settings
    from mlops_kit.notebook_runner import list_notebooks, run_notebooks

    settings = get_settings(workspace=folder / f"workspace{i}")
    start = time.perf_counter()
    results = run_notebooks(list_notebooks(), settings=settings, out_dir=folder / f"runs{i}")
    total = time.perf_counter() - start
    failed = [r for r in results if not r.ok]
    if failed:
        raise SystemExit(f"notebook failed: {failed[0].notebook}: {failed[0].error}")
    seconds = {r.notebook: r.seconds for r in results}
    cells = {r.notebook: cell_seconds(r.output) for r in results}
    return total, seconds, cells


def report(kernel: float, floor: float, runs: list, top: int) -> None:
    """Print the figures of the runs (medians when repeated) in seconds and x kernel start."""
    print(f"bare kernel start (median of 6)        {kernel:6.2f} s")
    print(
        f"papermill, one empty cell              {floor:6.2f} s   ({floor / kernel:4.1f}x kernel)"
    )
    print()
    print(f"{'notebook / slowest cells':<58}{'seconds':>8}{'x kernel':>10}")
    slowest_cell = 0.0
    for name in runs[0][1]:
        s = statistics.median(run[1][name] for run in runs)
        print(f"{name:<58}{s:8.2f}{s / kernel:10.1f}")
        by_index: dict[int, list[float]] = {}
        firsts = {}
        for run in runs:
            for index, seconds, first in run[2][name]:
                by_index.setdefault(index, []).append(seconds)
                firsts[index] = first
        medians = sorted(((statistics.median(v), j) for j, v in by_index.items()), reverse=True)
        slowest_cell = max([slowest_cell, *(m for m, _ in medians[:1])])
        for seconds, index in medians[:top]:
            label = f"  [{index:2d}] {firsts[index][:48]}"
            print(f"{label:<58}{seconds:8.2f}{seconds / kernel:10.1f}")
    total = statistics.median(run[0] for run in runs)
    # what a presenter waits for, cell after cell, without the runner's kernel starts and reports
    cells = statistics.median(sum(c[1] for cs in run[2].values() for c in cs) for run in runs)
    print(f"{'every cell, added up (the live talk)':<58}{cells:8.2f}{cells / kernel:10.1f}")
    print(f"{'total (whole headless run)':<58}{total:8.2f}{total / kernel:10.1f}")
    print()
    for what, ratio, target in (
        ("slowest cell", slowest_cell / kernel, CELL_TARGET),
        ("whole run", total / kernel, RUN_TARGET),
    ):
        verdict = "within" if ratio <= target else "OVER"
        print(f"target: {what} at most {target:.0f}x kernel -> {ratio:.1f}x, {verdict} target")


def main() -> None:
    """Time the bare kernel, then the notebooks, and print both in seconds and x kernel start."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--repeat", type=int, default=1, help="how many full runs (fresh workspace each)"
    )
    parser.add_argument("--cells", type=int, default=3, help="slowest cells listed per notebook")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.environ["MLOPS_KIT_WORKSPACE"] = str(folder / "workspace")
        os.environ["MLOPS_KIT_RUNS_DIR"] = str(folder / "runs")
        from mlops_kit.notebook_runner import KERNEL_NAME

        # the machine's load drifts: the bare kernel is timed before and after the notebooks
        starts = [bare_kernel_start(KERNEL_NAME) for _ in range(3)]
        floor = bare_papermill(KERNEL_NAME, folder)
        runs = [run_once(folder, i) for i in range(args.repeat)]
        starts += [bare_kernel_start(KERNEL_NAME) for _ in range(3)]
        kernel = statistics.median(starts)
    report(kernel, floor, runs, args.cells)


if __name__ == "__main__":
    main()
