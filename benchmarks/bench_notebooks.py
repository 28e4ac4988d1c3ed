"""Time `make demo`'s headless notebook run, per notebook and in total, against a bare kernel start.

Run: .venv/bin/python benchmarks/bench_notebooks.py [--repeat N]
Everything runs in a fresh temporary workspace; the figures are printed, nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import nbformat

TARGET_SECONDS = 90.0  # the backbone issue's target for the whole headless run on 2 cores


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


def main() -> None:
    """Print per-notebook and total run times, and how they compare to a bare kernel start."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--repeat", type=int, default=1, help="how many full runs (fresh workspace each)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.environ["MLOPS_KIT_WORKSPACE"] = str(folder / "workspace")
        os.environ["MLOPS_KIT_RUNS_DIR"] = str(folder / "runs")
        from mlops_kit.config import get_settings
        from mlops_kit.notebook_runner import KERNEL_NAME, list_notebooks, run_notebooks

        kernel = [bare_kernel_start(KERNEL_NAME) for _ in range(3)]
        papermill_floor = bare_papermill(KERNEL_NAME, folder)
        per_notebook: dict[str, list[float]] = {}
        totals = []
        for i in range(args.repeat):
            settings = get_settings(workspace=folder / f"workspace{i}")
            start = time.perf_counter()
            results = run_notebooks(
                list_notebooks(), settings=settings, out_dir=folder / f"runs{i}"
            )
            totals.append(time.perf_counter() - start)
            failed = [r for r in results if not r.ok]
            if failed:
                raise SystemExit(f"notebook failed: {failed[0].notebook}: {failed[0].error}")
            for r in results:
                per_notebook.setdefault(r.notebook, []).append(r.seconds)

    k = statistics.median(kernel)
    print(f"bare kernel start (median of 3)        {k:6.2f} s")
    print(
        f"papermill, one empty cell              {papermill_floor:6.2f} s   ({papermill_floor / k:4.1f}x kernel)"
    )
    print()
    print(f"{'notebook':<34}{'seconds':>8}{'x kernel':>10}")
    for name, values in per_notebook.items():
        s = statistics.median(values)
        print(f"{name:<34}{s:8.2f}{s / k:10.1f}")
    total = statistics.median(totals)
    verdict = "within" if total < TARGET_SECONDS else "OVER"
    print(f"{'total (whole headless run)':<34}{total:8.2f}{total / k:10.1f}")
    print(
        f"target: under {TARGET_SECONDS:.0f} s on 2 cores -> {verdict} target ({total / TARGET_SECONDS:.0%} of it)"
    )


if __name__ == "__main__":
    main()
