"""The model package: written from the champion, checked against its manifest, served anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mlops_kit import processes
from mlops_kit.config import MODEL_MANIFEST, PROJ_ROOT, get_settings
from mlops_kit.packaging import MODEL_DIR, package_champion, read_package, sha256_of
from mlops_kit.registry import champion_version
from mlops_kit.serving.app import create_app
from tests.conftest import Trained
from tests.helpers import run_cli

with warnings.catch_warnings():
    warnings.simplefilter(
        "ignore"
    )  # starlette asks for httpx2 here; the kit's dev deps carry httpx
    from fastapi.testclient import TestClient

RECORDS = [
    {"island": "Dream", "bill_length_mm": 46.5, "bill_depth_mm": 17.9, "flipper_length_mm": 192.0,
     "body_mass_g": 3500.0, "sex": "female"},
    {"island": "Biscoe", "bill_length_mm": 47.3, "bill_depth_mm": 15.3, "flipper_length_mm": 222.0,
     "body_mass_g": 5250.0, "sex": "male"},
    {"island": "Torgersen", "bill_length_mm": 39.1, "bill_depth_mm": 18.7,
     "flipper_length_mm": 181.0, "body_mass_g": 3750.0},
]  # fmt: skip


@pytest.fixture(scope="module")
def package(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's champion packaged once for this module; tests copy it before changing it."""
    return package_champion(trained.settings, tmp_path_factory.mktemp("dist")).path


def answers(client: TestClient | httpx.Client) -> list[tuple[str, float, int | str]]:
    """What /predict answers for RECORDS: each class, confidence and the version that answered."""
    response = client.post("/predict", json=RECORDS)
    assert response.status_code == 200, response.text
    return [
        (p["predicted"], round(p["confidence"], 9), p["model_version"])
        for p in response.json()["predictions"]
    ]


def test_the_package_holds_the_model_its_dockerfile_and_a_manifest(
    trained: Trained, package: Path
) -> None:
    version = champion_version(trained.settings)
    assert package.name == f"model-{trained.settings.model_name}-v{version}"
    for name in ("MLmodel", "requirements.txt", "python_env.yaml", "python_model.pkl"):
        assert (package / MODEL_DIR / name).is_file()
    assert "mlflow==" in (package / MODEL_DIR / "requirements.txt").read_text()
    assert f"COPY {MODEL_DIR} /opt/ml/model" in (package / "Dockerfile").read_text()
    manifest = json.loads((package / MODEL_MANIFEST).read_text())
    assert (manifest["model_name"], manifest["version"]) == (trained.settings.model_name, version)
    assert manifest["run_id"] == trained.result.best.run_id
    assert manifest["data_version"] == trained.result.prepared.card.data_version
    assert manifest["metrics"]["eval_f1_macro"] == pytest.approx(trained.result.decision.score)
    files = [p for p in package.rglob("*") if p.is_file() and p.name != MODEL_MANIFEST]
    assert {p.relative_to(package).as_posix(): sha256_of(p) for p in files} == manifest["files"]


def test_the_dockerfile_is_what_mlflows_own_command_writes(package: Path, tmp_path: Path) -> None:
    """write_dockerfile calls generate-dockerfile's steps in-process: the same files come out."""
    model = package / MODEL_DIR
    by_command = tmp_path / "by-command"
    done = subprocess.run(
        [sys.executable, "-m", "mlflow", "models", "generate-dockerfile", "-m", str(model),
         "-d", str(by_command), "--env-manager", "local"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    files = {p.relative_to(by_command).as_posix() for p in by_command.rglob("*") if p.is_file()}
    assert "Dockerfile" in files
    for name in files:
        assert (package / name).read_bytes() == (by_command / name).read_bytes(), name


def test_packaging_again_replaces_the_folder_whole(trained: Trained, package: Path) -> None:
    dist = package.parent
    (package / "stray.txt").write_text("left from an older package")
    again = package_champion(trained.settings, dist)
    assert again.path == package
    assert not (package / "stray.txt").exists()
    assert [p.name for p in dist.iterdir()] == [package.name]  # no temporary folder left behind
    read_package(package)  # matches its manifest


def test_packaging_without_a_champion_names_the_fix(tmp_path: Path) -> None:
    done = run_cli("package", "--dist", str(tmp_path / "dist"))
    assert done.returncode == 2
    assert "no champion" in done.stderr and "mlops-kit train" in done.stderr
    assert not list((tmp_path / "dist").glob("model-*"))


def test_a_changed_package_is_refused_before_serving(package: Path, tmp_path: Path) -> None:
    changed = tmp_path / package.name
    subprocess.run(["cp", "-r", str(package), str(changed)], check=True)
    with (changed / MODEL_DIR / "requirements.txt").open("a") as f:
        f.write("some-other-package==1.0\n")
    done = run_cli("serve", "--model-uri", str(changed), "--port", str(processes.free_port()))
    assert done.returncode == 2
    assert "does not match its manifest" in done.stderr and "requirements.txt" in done.stderr


def test_the_api_serves_a_package_without_the_registry(trained: Trained, package: Path) -> None:
    with TestClient(create_app(trained.settings)) as client:
        from_registry = answers(client)
    fixed = get_settings(model_uri=str(package), reload_interval=0)  # an empty workspace
    with TestClient(create_app(fixed)) as client:
        info = client.get("/model").json()
        from_package = answers(client)
    assert (info["source"], info["alias"]) == (str(package), None)
    assert info["version"] == champion_version(trained.settings)
    assert from_package == from_registry
    assert not fixed.mlflow_db.exists()  # the registry was never asked (asking would create it)


def test_any_mlflow_model_uri_is_served_and_a_missing_one_says_why(
    trained: Trained, package: Path, tmp_path: Path
) -> None:
    plain = package / MODEL_DIR  # an MLflow model directory with no manifest beside it
    with TestClient(create_app(get_settings(model_uri=str(plain)))) as client:
        info = client.get("/model").json()
        assert (info["source"], info["version"], info["alias"]) == (str(plain), "unknown", None)
        assert client.post("/predict", json=RECORDS).status_code == 200
    missing = str(tmp_path / "no-such-model")
    with TestClient(create_app(get_settings(model_uri=missing))) as client:
        health = client.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "unavailable"
    assert f"could not load {missing}" in health.json()["registry"]["error"]


def test_a_registered_models_uri_is_looked_up_in_the_kits_registry(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """serve --model-uri models:/<name>/<version>: the kit's registry, never ./mlflow.db."""
    monkeypatch.chdir(tmp_path)  # where MLflow's default store would land
    name, version = trained.settings.model_name, champion_version(trained.settings)
    for uri in (f"models:/{name}/{version}", f"models:/{name}@champion"):
        fixed = trained.settings.model_copy(update={"model_uri": uri, "reload_interval": 0})
        with TestClient(create_app(fixed)) as client:
            info = client.get("/model").json()
            assert (info["name"], info["version"], info["alias"]) == (name, version, None)
            assert [a[2] for a in answers(client)] == [version] * len(RECORDS)
    missing = trained.settings.model_copy(update={"model_uri": f"models:/{name}/99"})
    with TestClient(create_app(missing)) as client:
        error = client.get("/health").json()["registry"]["error"]
    assert f"has no {name} v99" in error
    assert not (tmp_path / "mlflow.db").exists()


# --- where the kit is not installed: a fresh venv (slow: pip installs from PyPI) --------------


@dataclass(frozen=True)
class FreshVenv:
    """A venv that had only the package's requirements.txt, then got the kit's wheel."""

    python: Path
    bare_prediction: list[dict]  # what the model predicted there before the kit was installed


BARE_PREDICT = """
import importlib.util, json, sys
import mlflow.pyfunc
assert importlib.util.find_spec("mlops_kit") is None, "the kit is installed here"
model = mlflow.pyfunc.load_model(sys.argv[1])
print(json.dumps(model.predict(model.input_example).to_dict("records")))
"""


def _run(*command: str | Path) -> str:
    done = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, env=_bare_env(), check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _bare_env() -> dict[str, str]:
    """This environment without what points at the kit's source or stores (PYTHONPATH, MLflow)."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV")
    return {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.startswith(("MLOPS_KIT_", "MLFLOW_"))
    }


@pytest.fixture(scope="module")
def fresh_venv(package: Path, tmp_path_factory: pytest.TempPathFactory) -> FreshVenv:
    """One venv for both checks: the package's requirements, a prediction, then the kit's wheel."""
    root = tmp_path_factory.mktemp("fresh-venv")
    _run(sys.executable, "-m", "venv", root / "venv")
    python = root / "venv" / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", "-r", package / MODEL_DIR / "requirements.txt")
    bare = json.loads(_run(python, "-c", BARE_PREDICT, package / MODEL_DIR).splitlines()[-1])
    # the wheel as `make package` builds it (pip and python -m build call the same setuptools)
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", root, PROJ_ROOT)
    wheel = next(root.glob("mlops_kit-*.whl"))
    _run(python, "-m", "pip", "install", "-q", "-c", PROJ_ROOT / "constraints.txt", wheel)
    return FreshVenv(python, bare)


@pytest.mark.slow
def test_the_package_loads_with_only_its_requirements(fresh_venv: FreshVenv, package: Path) -> None:
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(package / MODEL_DIR))
    here = model.predict(model.input_example).to_dict("records")
    assert [r["predicted"] for r in fresh_venv.bare_prediction] == [r["predicted"] for r in here]
    assert [r["confidence"] for r in fresh_venv.bare_prediction] == pytest.approx(
        [r["confidence"] for r in here]
    )


@pytest.fixture
def served_from_wheel(fresh_venv: FreshVenv, package: Path, tmp_path: Path) -> Iterator[str]:
    """The wheel's `mlops-kit serve --model-uri` in the fresh venv, with no registry reachable."""
    installed = _run(fresh_venv.python, "-c", "import mlops_kit; print(mlops_kit.__file__)")
    assert "site-packages" in installed  # the wheel, not this checkout
    port = processes.free_port()
    env = {
        **_bare_env(),
        "MLOPS_KIT_WORKSPACE": str(tmp_path / "workspace"),
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{processes.free_port()}",  # nobody listens
    }
    command = [str(fresh_venv.python.parent / "mlops-kit"), "serve", "--model-uri", str(package)]
    command += ["--port", str(port)]
    url = f"http://{processes.HOST}:{port}"
    with processes.start(command, tmp_path / "server.log", env) as server:
        processes.wait_ready(server, processes.http_ready(f"{url}/health"), "the wheel's API", 120)
        yield url


@pytest.mark.slow
def test_the_wheel_serves_the_package_as_the_registry_serves_the_champion(
    trained: Trained, served_from_wheel: str
) -> None:
    with TestClient(create_app(trained.settings)) as client:
        from_registry = answers(client)
    with httpx.Client(base_url=served_from_wheel, timeout=30) as client:
        assert client.get("/health").json()["status"] == "ok"
        from_wheel = answers(client)
    assert from_wheel == from_registry
