"""One typed settings object for the whole kit (env vars ``MLOPS_KIT_*`` and ``MLFLOW_TRACKING_URI``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJ_ROOT = Path(__file__).resolve().parents[2]

LOW_CONFIDENCE = 0.7  # below this confidence a prediction is flagged for review
CHAMPION = "champion"  # the registry alias of the model version in production
STAGING = "staging"  # the registry alias of the version on trial before production
# set by services.start_api: the API stops itself when the process that started it is gone
EXIT_WITH_PARENT = "MLOPS_KIT_EXIT_WITH_PARENT"
# a model package's manifest (packaging.py writes it, the API reads it to serve the package)
MODEL_MANIFEST = "manifest.json"

PENGUIN_FEATURES = [
    "island",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "sex",
]
PENGUINS_CSV = PROJ_ROOT / "data" / "raw" / "penguins_raw.csv"  # the shipped table
PENGUIN_TARGET = "species"
PENGUIN_SPLIT_COLUMN = "date_egg"  # the shipped table's season column
RANDOM_SPLIT = "none"  # written as a split column: a seeded random split, no season column


@dataclass(frozen=True)
class TableSpec:
    """Which table to learn from and how: the data stage's input, parsed once where it comes in.

    None is "not given" in every field, and the data stage fills it in from the table it reads:
    the shipped penguins table; the column `species`; the penguin measurements on the shipped
    table, the usable columns of yours; the table's season column where it has one (`date_egg`),
    else a seeded random split.
    """

    data_path: Path | None = None  # absolute: the edge resolved it against the caller's folder
    target: str | None = None
    features: tuple[str, ...] | None = None
    split_column: str | None = None
    random_split: bool = False  # a seeded random split, even where the table has a season column

    def with_features(self, features: list[str] | tuple[str, ...] | None) -> TableSpec:
        """The same table with other feature columns (None: the table's default)."""
        return replace(self, features=tuple(features) if features else None)


def parse_text(value: object) -> str | None:
    """A column name as written anywhere; empty -> None (not given)."""
    text = "" if value is None else str(value).strip()
    return text or None


def parse_data_path(value: object) -> Path | None:
    """A data path as written anywhere, made absolute (a child process in another folder finds it)."""
    text = parse_text(value)
    return resolve_path(text).absolute() if text else None


def parse_names(value: object) -> tuple[str, ...] | None:
    """Column names as written anywhere: a list, a JSON/YAML list or 'a, b, c'; empty -> None."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = yaml.safe_load(text) if text.startswith("[") else text.split(",")
        except yaml.YAMLError as exc:
            raise ValueError(f"column names must look like [a, b] or 'a, b', not {text!r}") from exc
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected column names (a list or 'a, b, c'), not {value!r}")
    names = tuple(str(name).strip() for name in value if str(name).strip())
    return names or None


def is_random_split(value: object) -> bool:
    """Whether a split column as written asks for a seeded random split ('none')."""
    return str(value).strip().lower() == RANDOM_SPLIT


class Settings(BaseSettings):
    """Where the kit keeps its state and which defaults its pipeline uses."""

    model_config = SettingsConfigDict(
        env_prefix="MLOPS_KIT_", extra="ignore", populate_by_name=True
    )

    workspace: Path = PROJ_ROOT / "workspace"
    runs_dir: Path = PROJ_ROOT / "runs"
    tracking_uri_override: str | None = Field(
        default=None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "MLOPS_KIT_TRACKING_URI")
    )
    registry_uri_override: str | None = Field(
        default=None, validation_alias=AliasChoices("MLFLOW_REGISTRY_URI")
    )
    experiment_name: str = "mlops-kit"
    model_name: str = "penguins-classifier"
    # the table (TableSpec, see `table`): None is "not given"; MLOPS_KIT_SPLIT_COLUMN=none is a
    # seeded random split, as --split-column none and the notebooks' SPLIT_COLUMN="none"
    data_path: Path | None = None
    target: str | None = None
    features: Annotated[tuple[str, ...] | None, NoDecode] = None
    split_column: str | None = None
    random_split: bool = False
    quality_gate: float = 0.90
    gate_metric: str = "f1_macro"
    seed: int = 42
    lock_timeout: float = 120.0  # seconds a command waits for another one writing the workspace
    # serving (the REST API) and its prediction log
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    alias: str = CHAMPION  # the registry alias the API serves (and follows): champion, staging…
    shadow_alias: str | None = None  # an alias that scores the same requests in shadow, unsent
    # the kit's store (prediction log, review sets, labels): a SQLAlchemy URL; default: SQLite in
    # the workspace. MLOPS_KIT_PREDICTION_LOG_URL is the name it had before the store held more.
    store_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLOPS_KIT_STORE_URL", "MLOPS_KIT_PREDICTION_LOG_URL"),
    )
    low_confidence: float = LOW_CONFIDENCE
    max_batch: int = 10_000  # largest batch /predict accepts
    reload_interval: float = 5.0  # seconds between registry polls for a new champion; 0 = off
    model_uri: str | None = None  # serve this model package folder or MLflow model URI, no registry
    admin_token: str | None = None  # enables POST /admin/reload when set
    accelerator: bool = True  # score with the numpy plan where it reproduces the model; off: False
    # monitoring and retraining
    monitor_window: int = 100  # the newest predictions the monitoring verdict looks at
    low_confidence_share: float = 0.15  # retraining is due above this share of low confidence
    drift_p_value: float = 0.01  # a feature drifts when its KS / chi-square p-value is below this
    drift_psi: float = 0.25  # ... and its population stability index is above this
    retrain_holdout: float = 0.3  # share of new labelled cases held out of training, to evaluate

    @model_validator(mode="before")
    @classmethod
    def _random_split(cls, values: object) -> object:
        """A split column written 'none' is a random split; one that names a column is not."""
        if isinstance(values, dict) and parse_text(values.get("split_column")):
            random = is_random_split(values["split_column"])
            column = None if random else values["split_column"]
            return {**values, "split_column": column, "random_split": random}
        return values

    @field_validator("data_path", mode="before")
    @classmethod
    def _data_path(cls, value: object) -> Path | None:
        return parse_data_path(value)

    @field_validator("target", "split_column", mode="before")
    @classmethod
    def _column(cls, value: object) -> str | None:
        return parse_text(value)

    @field_validator("features", mode="before")
    @classmethod
    def _features(cls, value: object) -> tuple[str, ...] | None:
        return parse_names(value)

    @property
    def table(self) -> TableSpec:
        """The table these settings name (each field None where nothing was given)."""
        return TableSpec(
            self.data_path, self.target, self.features, self.split_column, self.random_split
        )

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI: the env var if set, else the embedded SQLite database."""
        return self.tracking_uri_override or f"sqlite:///{self.mlflow_db}"

    @property
    def registry_uri(self) -> str:
        """The MLflow registry URI: follows the tracking URI unless set on its own."""
        return self.registry_uri_override or self.tracking_uri

    @property
    def embedded(self) -> bool:
        """True when the kit uses its own SQLite database rather than a tracking server."""
        return self.tracking_uri_override is None

    @property
    def has_registry(self) -> bool:
        """Whether there is a registry to ask: a tracking server, or the embedded database file."""
        return not self.embedded or self.mlflow_db.exists()

    @property
    def mlflow_db(self) -> Path:
        """The embedded MLflow database file."""
        return self.workspace / "mlflow.db"

    @property
    def artifact_root(self) -> Path:
        """Where the embedded MLflow keeps artifacts (models, plots, reports)."""
        return self.workspace / "mlartifacts"

    @property
    def data_dir(self) -> Path:
        """Where processed data versions and the catalogue are written."""
        return self.workspace / "data"

    @property
    def store(self) -> str:
        """SQLAlchemy URL of the kit's store (SQLite in the workspace unless set)."""
        return self.store_url or f"sqlite:///{self.workspace / 'store.db'}"

    @property
    def handoff_dir(self) -> Path:
        """Where the manual process (level 0) 'hands over' its model file."""
        return self.workspace / "handoff"


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process build the same settings."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None or name in ("tracking_uri_override", "registry_uri_override"):
            continue
        text = json.dumps(list(value)) if isinstance(value, list | tuple) else str(value)
        env[f"MLOPS_KIT_{name.upper()}"] = text
    if settings.tracking_uri_override:
        env["MLFLOW_TRACKING_URI"] = settings.tracking_uri_override
    if settings.registry_uri_override:
        env["MLFLOW_REGISTRY_URI"] = settings.registry_uri_override
    return env


@dataclass(frozen=True)
class DeployEnvironment:
    """A place the model is delivered to: the alias it serves, its API's port, its own log."""

    name: str
    alias: str
    port: int
    store_file: str | None  # its prediction log in the workspace; None: the settings' store

    def settings(self, settings: Settings) -> Settings:
        """The settings of this environment's API: its alias, its port, its prediction log."""
        update: dict[str, object] = {"alias": self.alias, "api_port": self.port}
        if self.store_file and settings.store_url is None:
            update["store_url"] = f"sqlite:///{settings.workspace / self.store_file}"
        return settings.model_copy(update=update)


# CD delivers through these, in order: a version reaches production only after staging passed it
ENVIRONMENTS = {
    STAGING: DeployEnvironment(STAGING, STAGING, 8001, "store-staging.db"),
    "production": DeployEnvironment("production", CHAMPION, 8000, None),
}


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def resolve_path(path: Path | str) -> Path:
    """A user-given path: as given if it exists (relative to the current folder), else from the repo root."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    from_root = PROJ_ROOT / p
    return from_root if from_root.exists() else p


def display_path(path: Path | str) -> str:
    """Show a path relative to the repository root when it is inside it."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(PROJ_ROOT))
    except ValueError:
        return str(p)
