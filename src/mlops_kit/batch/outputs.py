"""Where a batch writes: the scored file, its rejects beside it, and nothing half-written.

Both are written to hidden temporary files in the output's folder and renamed into place only when
the whole batch has been scored; a batch that fails removes them, so OUT never holds part of a run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

SUFFIX = ".parquet"
REJECTS_SUFFIX = ".rejects.parquet"


class OutputError(ValueError):
    """The output cannot be written as asked; the message says why and what to do."""


def rejects_path(out: Path) -> Path:
    """The rejects file beside an output: scored.parquet -> scored.rejects.parquet."""
    return out.with_name(out.name.removesuffix(SUFFIX) + REJECTS_SUFFIX)


@dataclass(frozen=True)
class Outputs:
    """The final paths of one batch and the temporary ones it writes first."""

    out: Path
    rejects: Path
    batch_id: str

    @property
    def tmp_out(self) -> Path:
        """Where the scored rows are written until the batch succeeds."""
        return self.out.with_name(f".{self.out.name}.{self.batch_id}.tmp")

    @property
    def tmp_rejects(self) -> Path:
        """Where the rejected rows are written until the batch succeeds."""
        return self.rejects.with_name(f".{self.rejects.name}.{self.batch_id}.tmp")

    def commit(self) -> None:
        """Move both files into place (replacing what --overwrite allowed to replace)."""
        for tmp, final in ((self.tmp_rejects, self.rejects), (self.tmp_out, self.out)):
            if final.is_dir():
                shutil.rmtree(final)
            elif tmp.is_dir() and final.exists():  # Spark's folder replaces a file
                final.unlink()
            os.replace(tmp, final)

    def discard(self) -> None:
        """Remove whatever the batch wrote (files or folders); OUT is left as it was."""
        for tmp in (self.tmp_out, self.tmp_rejects):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()


def plan(out: Path | str, source: Path, batch_id: str, *, overwrite: bool) -> Outputs:
    """Check the output can be written and return its paths; nothing is created yet."""
    out = Path(out).expanduser().absolute()  # the run and the summary say where, from anywhere
    if out.suffix.lower() != SUFFIX:
        raise OutputError(f"the output is written as Parquet: name it with .parquet (got {out})")
    if out.name.endswith(REJECTS_SUFFIX):
        raise OutputError(f"{out} is the name of a rejects file; choose another output name")
    resolved, src = out.resolve(), source.resolve()
    if resolved == src or (src.is_dir() and src in resolved.parents):
        raise OutputError(
            f"the output {out} would be written into the input {source}; write it elsewhere"
        )
    rejects = rejects_path(out)
    existing = [p for p in (out, rejects) if p.exists()]
    if existing and not overwrite:
        names = " and ".join(str(p) for p in existing)
        verb = "exists" if len(existing) == 1 else "exist"
        raise OutputError(f"{names} already {verb}; pass --overwrite to replace it")
    return Outputs(out, rejects, batch_id)
