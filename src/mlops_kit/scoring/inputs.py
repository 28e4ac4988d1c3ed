"""Validate: the request models, generated from the served model itself.

Nothing here is written by hand for one data set. The input fields and their types come from the
model's MLflow signature; the categories a field accepts come from the fitted OneHotEncoder inside
the model (scikit-learn's ``categories_``). From those, pydantic models are built:

* numeric inputs (the measurements a user has in hand) are **required**: a finite JSON number;
  strings, booleans, null, NaN and infinity are refused;
* categorical inputs are **optional**: one of the categories the model was trained on, or null /
  absent when unknown (the pipeline imputes the most frequent one); an unseen category is refused;
* other text inputs (no encoder knows their values) are optional free text;
* a column of the model's training file that is not an input (an identifier, free text, a date,
  the target; logged with the model as ``other_columns``) is accepted with any value and ignored,
  so a row can be sent as it is in the file; one of them may be the record's key
  (``record_key``), which comes back with the record's prediction;
* any other field is refused, so a typo (``bill_lenght_mm``) is an error, not a silently imputed
  value;
* a field is named as in the model (``od280_od315_of_diluted_wines``) or, where the model's table
  had another header for it, as in that file (``od280/od315_of_diluted_wines``, logged with the
  model as ``file_headers``); /docs shows the file's names.

The same models give the OpenAPI schema of ``/docs``, and the largest body worth reading.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NotRequired, Required

import numpy as np
import pandas as pd
import pydantic_core
from pydantic import AliasChoices, ConfigDict, Field, TypeAdapter, ValidationError, with_config
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from mlops_kit.scoring.errors import (
    BadRequest,
    columns_refused,
    records_refused,
    too_many,
    type_name,
)

NUMERIC_TYPES = {"double", "float", "long", "integer"}
# The largest body a request may have is derived from the fields (``RequestModels.body_limit``):
NUMBER_CHARS = 24  # the longest JSON text of a float64, e.g. -2.2250738585072014e-308
TEXT_CHARS = 1000  # room made for one free-text value
SLACK = 1.5  # room for whitespace: pretty-printed JSON (indent 2) stays within it
ALLOWANCE = 64 * 1024  # any request may be this large, whatever its batch limit
# room made in each record for the columns the model ignores, all together (an identifier, a
# date): a full batch of rows carrying long free text too is sent in parts. Not more: the limit
# bounds memory (penguins, 10,000 records: 3.2 MB -> 5.1 MB; tests/serving/test_memory.py)
OTHER_CHARS = 128
_BLANK = re.compile(rb"\s*")


@dataclass(frozen=True)
class InputField:
    """One input of the model: its name, its kind and, for a category, the values it may take."""

    name: str
    kind: Literal["number", "category", "text"]
    categories: tuple[str, ...] = ()
    header: str | None = None  # the column's header in the model's training file, if it differs

    @property
    def shown(self) -> str:
        """The name people know: the file's header where there was one, else the model's name."""
        return self.header or self.name

    @property
    def required(self) -> bool:
        """Numbers are required; categories and text may be null or left out."""
        return self.kind == "number"

    def describe(self) -> str:
        """What a valid value looks like, in words."""
        if self.kind == "number":
            text = "required, a finite number"
        elif self.kind == "category":
            text = "optional, one of " + ", ".join(self.categories) + " (null or absent: imputed)"
        else:
            text = "optional, text"
        return f"{text}; also accepted as '{self.name}'" if self.header else text

    def key(self, value: Any) -> Any:
        """A value's annotation under this field's key: the file's header and the model's name."""
        if self.header:
            return Annotated[value, Field(validation_alias=AliasChoices(self.header, self.name))]
        return value

    def value_type(self) -> Any:
        """What one value may be (the same rule in a record and in a column)."""
        if self.kind == "number":
            return Annotated[float, Field(strict=True, allow_inf_nan=False)]
        if self.kind == "category":
            return Literal[self.categories] | None  # type: ignore[valid-type]
        return Annotated[str | None, Field(strict=True)]

    def widest(self) -> int:
        """The most characters one ``"name": value,`` of this field takes in compact JSON."""
        if self.kind == "number":
            value = NUMBER_CHARS
        elif self.kind == "category":
            value = max(len("null"), *(len(json.dumps(c)) for c in self.categories))
        else:
            value = TEXT_CHARS + 2
        key = max(len(json.dumps(self.name)), len(json.dumps(self.header or "")))
        return key + 1 + value + 1


@dataclass(frozen=True)
class OtherColumn:
    """A column of the model's training file that is not an input: accepted in a record, unused."""

    name: str
    header: str | None = None  # the column's header in the file, if it differs from the name
    key: bool = False  # the record's key: sent back with the record's prediction

    @property
    def shown(self) -> str:
        """The name people know: the file's header where there was one, else the kit's name."""
        return self.header or self.name

    def describe(self) -> str:
        """What the API does with it, in words."""
        if self.key:
            text = "the record's key: any value, not used to score, sent back with the prediction"
        else:
            text = "a column of the training file the model does not use: any value, ignored"
        return f"{text}; also accepted as '{self.name}'" if self.header else text

    def annotation(self, value: Any) -> Any:
        """A value's annotation under this column's key (the file's header and the kit's name)."""
        described = Field(description=self.describe())
        if self.header:
            names = AliasChoices(self.header, self.name)
            described = Field(description=self.describe(), validation_alias=names)
        return Annotated[value, described]


def signature_inputs(model: Any) -> list[tuple[str, str]]:
    """(name, type) of each input column in the loaded pyfunc model's MLflow signature."""
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        raise ValueError("the model has no input signature with column names")
    return [(c.name, str(getattr(c.type, "name", c.type))) for c in schema.inputs]


def encoder_categories(pipeline: Any) -> dict[str, list[str]]:
    """The categories each one-hot encoded column was fitted with, read from the fitted pipeline."""
    found: dict[str, list[str]] = {}
    steps = [step for _, step in pipeline.steps] if isinstance(pipeline, Pipeline) else [pipeline]
    for step in steps:
        if not isinstance(step, ColumnTransformer):
            continue
        for _name, transformer, columns in step.transformers_:
            if isinstance(transformer, str) or len(columns) == 0:  # "drop", "passthrough", empty
                continue
            parts = transformer.steps if isinstance(transformer, Pipeline) else [("", transformer)]
            for _, part in parts:
                if isinstance(part, OneHotEncoder):
                    for column, values in zip(columns, part.categories_, strict=True):
                        found[str(column)] = [v for v in values if isinstance(v, str)]
    return found


@dataclass(frozen=True)
class Parsed:
    """A validated body: its values column-wise in model order (None: absent), rows, batch or not;
    and each record's key, where the model has a key column and the body carried it."""

    columns: dict[str, Any]
    rows: int
    batch: bool
    keys: list[Any] | None = None


def _closed(
    title: str,
    fields: tuple[InputField, ...],
    annotation: Any,
    others: tuple[OtherColumn, ...] = (),
    other: Any = Any,
) -> type:
    """A TypedDict with a key per field (numbers Required) and per other column, no other key."""
    keys = {
        f.name: (Required if f.required else NotRequired)[f.key(annotation(f))]  # type: ignore[index]
        for f in fields
    }
    keys.update({o.name: NotRequired[o.annotation(other)] for o in others})  # type: ignore[misc]
    return with_config(ConfigDict(extra="forbid", title=title))(TypedDict(title, keys))  # type: ignore[operator]


@dataclass(frozen=True)
class RequestModels:
    """The bodies a model accepts (one record, a batch, columns) and how to read them."""

    fields: tuple[InputField, ...]
    max_batch: int
    others: tuple[OtherColumn, ...] = ()  # the file's columns accepted and ignored
    record: TypeAdapter[Any] = field(init=False, repr=False, compare=False)
    batch: TypeAdapter[Any] = field(init=False, repr=False, compare=False)
    columns: TypeAdapter[Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        def value(f: InputField) -> Any:
            return Annotated[f.value_type(), Field(description=f.describe())]

        def column(f: InputField) -> Any:
            size = Field(description=f.describe(), min_length=1, max_length=self.max_batch)
            return Annotated[list[f.value_type()], size]  # type: ignore[misc]

        rows = Annotated[list[Any], Field(min_length=1, max_length=self.max_batch)]
        record = _closed("Record", self.fields, value, self.others)
        batch = Annotated[list[record], Field(min_length=1, max_length=self.max_batch)]  # type: ignore[valid-type]
        columns = _closed("Columns", self.fields, column, self.others, rows)
        object.__setattr__(self, "record", TypeAdapter(record))
        object.__setattr__(self, "batch", TypeAdapter(batch))
        object.__setattr__(self, "columns", TypeAdapter(columns))

    @property
    def names(self) -> list[str]:
        """Input names, in model order."""
        return [f.name for f in self.fields]

    @property
    def listing(self) -> str:
        """Input names as people know them, for a message."""
        return ", ".join(f.shown for f in self.fields)

    @property
    def file_headers(self) -> dict[str, str]:
        """The file's header of each input that had another one: {model name: header}."""
        return {f.name: f.header for f in self.fields if f.header}

    def shown(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """A record keyed by the names people know (the file's headers), e.g. for /docs."""
        headers = self.file_headers
        return {headers.get(name, name): value for name, value in record.items()}

    @property
    def key(self) -> OtherColumn | None:
        """The column whose value tells records apart, sent back with each prediction."""
        return next((o for o in self.others if o.key), None)

    @property
    def ignored(self) -> list[str]:
        """The file's columns a record may carry that the model does not use, as people know them."""
        return [o.shown for o in self.others]

    @property
    def required(self) -> list[str]:
        """Fields every record must carry."""
        return [f.name for f in self.fields if f.required]

    @property
    def categories(self) -> dict[str, list[str]]:
        """Known categories per categorical field."""
        return {f.name: list(f.categories) for f in self.fields if f.kind == "category"}

    @property
    def body_limit(self) -> int:
        """The largest body (bytes) worth reading: a full batch of the widest records, and slack."""
        record = 2 + sum(f.widest() for f in self.fields) + 1  # {...},
        record += OTHER_CHARS if self.others else 0
        return ALLOWANCE + int(self.max_batch * record * SLACK)

    def input_named(self, name: str | None) -> InputField | None:
        """The input of that name (the model's or the file's), if the model has one."""
        return next((f for f in self.fields if name in (f.name, f.header)), None)

    def parse_records(self, body: bytes) -> Parsed:
        """Validate a body holding one record (a JSON object) or a batch (an array of them).

        The JSON text is parsed first and the batch size checked on the parsed list, before any
        record is validated: parsing into Python objects takes half the memory of validating the
        JSON text at once (a 3 MB body of ``[{},{},...]``: +78 MB against +155 MB).
        """
        value = _parse_json(body, "one record as a JSON object, or a batch as an array of them")
        return self.validate_records(value)

    def validate_records(self, value: Any) -> Parsed:
        """Validate one record (a dict) or a batch (a list of them), already parsed from JSON."""
        if isinstance(value, list) and len(value) > self.max_batch:
            raise too_many(len(value), self.max_batch)
        if not isinstance(value, (dict, list)):
            raise BadRequest(
                422,
                "the body must be a JSON object (one record) or an array of records, "
                f"got {type_name(value)}",
            )
        batch = isinstance(value, list)
        try:
            value = (self.batch if batch else self.record).validate_python(value)
        except ValidationError as exc:
            raise records_refused(exc, self, batch) from None
        records = value if batch else [value]
        columns = {}
        for f in self.fields:
            if f.required:
                values = list(map(operator.itemgetter(f.name), records))
            else:
                values = [r.get(f.name) for r in records]
            columns[f.name] = np.array(values, dtype=np.float64) if f.kind == "number" else values
        return Parsed(columns, len(records), batch, self._keys(records))

    def _keys(self, records: list[dict[str, Any]]) -> list[Any] | None:
        """Each record's key (None where it has none); None when no record carries one."""
        key = self.key
        if key is None:
            return None
        keys = [r.get(key.name) for r in records]
        return keys if any(k is not None for k in keys) else None

    def parse_columns(self, body: bytes) -> Parsed:
        """Validate a batch sent column-wise: a JSON object of one array of values per field."""
        value = _parse_json(body, "a JSON object of columns, {field: [values]}")
        return self.validate_columns(value)

    def validate_columns(self, value: Any) -> Parsed:
        """Validate a batch given column-wise (a dict of lists), already parsed from JSON."""
        try:
            table = self.columns.validate_python(value)
        except ValidationError as exc:
            raise columns_refused(exc, self) from None
        lengths = {name: len(values) for name, values in table.items()}
        if len(set(lengths.values())) > 1:
            sizes = ", ".join(f"'{name}' has {n}" for name, n in lengths.items())
            raise BadRequest(422, f"the columns must all have the same number of rows: {sizes}")
        rows = next(iter(lengths.values()))
        columns = {}
        for f in self.fields:
            values = table.get(f.name, [None] * rows)
            columns[f.name] = np.array(values, dtype=np.float64) if f.kind == "number" else values
        keys = table.get(self.key.name) if self.key else None
        return Parsed(columns, rows, batch=True, keys=keys)


def _parse_json(body: bytes, what: str) -> Any:
    """The body's JSON value (pydantic_core's parser); a 400 if it is empty or not JSON."""
    if _BLANK.fullmatch(body):
        raise BadRequest(400, f"the body is empty: send {what}")
    try:
        return pydantic_core.from_json(body)
    except ValueError as exc:
        raise BadRequest(400, f"the body is not valid JSON: {exc}") from None


def request_models(
    inputs: list[tuple[str, str]],
    categories: dict[str, list[str]],
    max_batch: int,
    file_headers: Mapping[str, str] | None = None,
    other_columns: Mapping[str, str] | None = None,
    record_key: str | None = None,
) -> RequestModels:
    """The request models of a model with these signature inputs, encoder categories, headers,
    other columns of its file ({name: header}) and record key (one of those names)."""
    fields = []
    for name, dtype in inputs:
        header = (file_headers or {}).get(name)
        header = header if header and header != name else None
        if dtype in NUMERIC_TYPES:
            fields.append(InputField(name, "number", header=header))
        elif categories.get(name):
            fields.append(InputField(name, "category", tuple(categories[name]), header=header))
        else:
            fields.append(InputField(name, "text", header=header))
    names = {name for name, _ in inputs}
    others = tuple(
        OtherColumn(name, header if header and header != name else None, key=name == record_key)
        for name, header in (other_columns or {}).items()
        if name not in names
    )
    return RequestModels(tuple(fields), max_batch, others)


def _metadata(model: Any) -> dict[str, Any]:
    return getattr(model.metadata, "metadata", None) or {}


def file_headers(model: Any) -> dict[str, str]:
    """The training file's header of each input that had another one, as logged with the model."""
    return {str(k): str(v) for k, v in (_metadata(model).get("file_headers") or {}).items()}


def other_columns(model: Any) -> tuple[dict[str, str], str | None]:
    """The training file's other columns ({name: header}) and record key, as logged with the
    model; a model logged before the kit kept them has none (only its inputs are accepted)."""
    metadata = _metadata(model)
    others = {str(k): str(v) for k, v in (metadata.get("other_columns") or {}).items()}
    key = metadata.get("record_key")
    return others, (str(key) if key in others else None)


def model_frame(columns: Mapping[str, Sequence[Any]], inputs: RequestModels) -> pd.DataFrame:
    """Values given column-wise (None: missing) as the DataFrame the model's pipeline expects."""
    data = {}
    for f in inputs.fields:
        values = columns[f.name]
        if f.kind == "number":
            data[f.name] = np.asarray(values, dtype=np.float64)
        else:
            data[f.name] = pd.Series([np.nan if v is None else v for v in values], dtype=object)
    return pd.DataFrame(data, columns=inputs.names)
