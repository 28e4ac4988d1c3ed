"""GET /model and GET /health say how the serving environment compares with the training one."""

from __future__ import annotations

import platform
from importlib.metadata import version
from pathlib import Path

import mlflow
from fastapi.testclient import TestClient

from mlops_kit.candidate_log import pip_requirements
from mlops_kit.config import Settings
from mlops_kit.scoring.loader import build_champion
from tests.helpers import other_minor, pin_in_model


def test_model_and_health_show_python_and_every_package_matching(client: TestClient) -> None:
    info, health = client.get("/model").json(), client.get("/health").json()

    assert info["environment"] == health["environment"]
    found = info["environment"]
    assert found["match"] is True
    assert found["python"] == {
        "name": "python",
        "model": platform.python_version(),
        "here": platform.python_version(),
        "match": True,
        "note": None,
    }
    assert {p["name"]: (p["model"], p["here"]) for p in found["packages"]} == {
        r.split("==")[0]: (r.split("==")[1], version(r.split("==")[0])) for r in pip_requirements()
    }


def test_the_loader_checks_the_directory_it_loaded(settings: Settings, tmp_path: Path) -> None:
    """A model whose requirements pin another scikit-learn minor is served, and says so."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{settings.model_name}/1", dst_path=str(tmp_path)
        )
    )
    here = version("scikit-learn")
    pin_in_model(local, "scikit-learn", other_minor(here))

    champion = build_champion(
        str(local),
        name=settings.model_name,
        version="1",
        alias="champion",
        run_id=None,
        tags={},
        metrics={},
        source=str(local),
        max_batch=10,
        accelerate=False,
    )

    found = champion.info()["environment"]
    assert found["match"] is False
    [sklearn] = [p for p in found["packages"] if p["name"] == "scikit-learn"]
    assert (sklearn["model"], sklearn["here"], sklearn["match"]) == (other_minor(here), here, False)
    assert f"install scikit-learn=={other_minor(here)} here" in sklearn["note"]
