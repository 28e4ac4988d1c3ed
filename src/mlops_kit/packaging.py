"""The champion as a model package a person can point at: ``dist/model-<name>-v<version>/``.

The folder is a Docker build context as ``mlflow models generate-dockerfile`` writes it: its
``Dockerfile`` and, under ``model_dir/model/``, the MLflow model directory as MLflow wrote it
(MLmodel, the pickled pyfunc, pinned ``requirements.txt``, ``python_env.yaml``). Beside them
``manifest.json`` says which version it is, from which run and data, with its metrics and the
sha256 of every other file. The pyfunc is pickled by value, so the package loads where the kit is
not installed (with only its ``requirements.txt``), as the Dockerfile's image does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_kit.config import MODEL_MANIFEST, Settings
from mlops_kit.registry import champion_version
from mlops_kit.tracking import client as make_client

MODEL_DIR = "model_dir/model"  # where generate-dockerfile puts the model; its Dockerfile COPYs it


@dataclass(frozen=True)
class ModelPackage:
    """A written model package: its folder and its manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def size_bytes(self) -> int:
        """The package's size on disk (every file, the manifest included)."""
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    def table(self) -> pd.DataFrame:
        """What the package holds, as a notebook shows it."""
        m = self.manifest
        rows = [
            ("model", f"{m['model_name']} v{m['version']}"),
            ("data version", m["data_version"]),
            ("files", f"{len(m['files'])} + {MODEL_MANIFEST} (sha256)"),
            ("contents", "MLmodel, requirements.txt, python_env.yaml, Dockerfile"),
        ]
        return pd.DataFrame(rows, columns=["item", "value"])

    def lines(self) -> list[str]:
        """What `mlops-kit package` prints."""
        m = self.manifest
        return [
            f"model package  {self.path}",
            f"model          {m['model_name']} v{m['version']} (run {m['run_id']})",
            f"data version   {m['data_version']}",
            f"files          {len(m['files'])} + {MODEL_MANIFEST}, {self.size_bytes / 1024:.0f} KiB",
            f"serve it       mlops-kit serve --model-uri {self.path}",
            f"image          docker build -t {m['model_name']}:{m['version']} {self.path}",
        ]


def sha256_of(path: Path) -> str:
    """The sha256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(folder: Path) -> dict[str, str]:
    """The sha256 of every file under a folder (but its manifest), by POSIX path inside it."""
    return {
        p.relative_to(folder).as_posix(): sha256_of(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).as_posix() != MODEL_MANIFEST
    }


def write_dockerfile(model: Path, out: Path) -> None:
    """What `mlflow models generate-dockerfile -m MODEL -d OUT --env-manager local` writes.

    The command's own steps, called in this process: the command would start a new interpreter
    and import MLflow again (~2 s of notebook 03). tests/test_packaging.py checks the two write
    the same files.
    """
    from mlflow.models.flavor_backend_registry import get_flavor_backend

    backend = get_flavor_backend(str(model), docker_build=True, env_manager="local")
    if backend is None or not backend.can_build_image():
        raise RuntimeError(f"MLflow cannot build an image for the model in {model}")
    backend.generate_dockerfile(
        str(model), str(out), mlflow_home=None, install_java=None, install_mlflow=False
    )


def _manifest(settings: Settings, version: str, folder: Path) -> dict[str, Any]:
    """Which version the package holds, where it came from, and a hash of each of its files."""
    client = make_client(settings)
    mv = client.get_model_version(settings.model_name, version)
    tags = dict(mv.tags or {})
    metrics = dict(client.get_run(mv.run_id).data.metrics) if mv.run_id else {}
    return {
        "model_name": settings.model_name,
        "version": str(version),
        "run_id": mv.run_id,
        "data_version": tags.get("data_version"),
        "metrics": metrics,
        "tags": tags,
        "model_path": MODEL_DIR,
        "packaged_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": file_hashes(folder),
    }


def _replace(new: Path, final: Path, trash: Path) -> None:
    """Put the finished folder in place of the old one by renames (never a half-written one)."""
    if final.exists():
        final.rename(trash)
    new.rename(final)


def package_champion(settings: Settings, dist: Path) -> ModelPackage:
    """Write the champion as dist/model-<name>-v<version>/, replacing a package already there."""
    import mlflow.artifacts

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in the log
    version = champion_version(settings)
    if version is None:
        raise ValueError(
            f"no champion of '{settings.model_name}' to package: train one first (mlops-kit train)"
        )
    client = make_client(settings)
    source = client.get_model_version_download_uri(settings.model_name, version)
    final = dist / f"model-{settings.model_name}-v{version}"
    dist.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=dist))  # same disk: renames work
    try:
        downloaded = mlflow.artifacts.download_artifacts(
            artifact_uri=source, dst_path=str(work / "download"), tracking_uri=settings.tracking_uri
        )
        model = Path(downloaded).rename(work / "model")  # generate-dockerfile keeps this name
        package = work / "package"
        write_dockerfile(model, package)
        manifest = _manifest(settings, version, package)
        (package / MODEL_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _replace(package, final, work / "replaced")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ModelPackage(final, manifest)


def read_package(path: Path) -> ModelPackage:
    """A package folder read back, refused when a file is missing or differs from its manifest."""
    manifest = json.loads((path / MODEL_MANIFEST).read_text())
    found = file_hashes(path)
    wrong = sorted(n for n, h in manifest["files"].items() if found.get(n) != h)
    extra = sorted(set(found) - set(manifest["files"]))
    if wrong or extra:
        raise ValueError(
            f"{path} does not match its manifest: changed or missing {wrong}, not listed {extra}"
        )
    return ModelPackage(path, manifest)
