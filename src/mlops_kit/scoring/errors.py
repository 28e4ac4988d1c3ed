"""What a refused request is told: an HTTP status, one readable line, and every problem itemised.

pydantic finds the problems; this module only words them for a person who sent a record: which
record, which field, what was wrong, and what the model would accept instead.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import ValidationError

MAX_PROBLEMS = 20  # problems listed in one error response


class Inputs(Protocol):
    """What a message needs to know of the model's inputs (``inputs.RequestModels`` has it)."""

    max_batch: int

    @property
    def listing(self) -> str: ...

    def input_named(self, name: str | None) -> Any: ...


class BadRequest(Exception):
    """A request the API refuses: HTTP status, a one-line message and the itemised problems."""

    def __init__(
        self,
        status: int,
        message: str,
        problems: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = problems or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON error body: a summary plus FastAPI-style ``detail`` items."""
        return {"message": self.message, "detail": self.problems}


def show(value: object) -> str:
    """A value as a person would write it, cut short if long."""
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def type_name(value: object) -> str:
    """The JSON kind of a parsed value, with its article ("a string", "null", ...)."""
    if value is None:
        return "null"
    kinds = [(bool, "a boolean"), (str, "a string"), ((int, float), "a number")]
    kinds += [(list, "an array"), (dict, "an object")]
    for kind, name in kinds:
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _field_problem(kind: str, name: str | None, value: object, models: Inputs) -> str:
    field = models.input_named(name)
    if kind == "missing":
        return f"field '{name}' is missing ({field.describe()})" if field else "missing"
    if kind == "extra_forbidden":
        return f"field '{name}' is not an input of the model; its inputs are: {models.listing}"
    if kind in ("float_type", "string_type"):
        wanted = "a number" if kind == "float_type" else "text or null"
        return f"field '{name}' must be {wanted}, got {type_name(value)} {show(value)}"
    if kind == "finite_number":
        return f"field '{name}' must be a finite number, got {show(value)}"
    if kind == "literal_error":
        known = ", ".join(field.categories) if field else ""
        if isinstance(value, str):
            return f"field '{name}' has an unknown category {show(value)}; the model knows: {known}"
        return (
            f"field '{name}' must be one of {known} or null, got {type_name(value)} {show(value)}"
        )
    if kind == "dict_type":
        return f"a record must be a JSON object, got {type_name(value)}"
    return ""


def _problem(error: dict[str, Any], models: Inputs, batch: bool) -> dict[str, Any]:
    loc = list(error["loc"])
    record = loc.pop(0) if batch and loc and isinstance(loc[0], int) else (None if batch else 0)
    name = str(loc[0]) if loc else None
    msg = _field_problem(error["type"], name, error.get("input"), models) or error["msg"]
    where = f"record {record}: " if batch and record is not None else ""
    item: dict[str, Any] = {"loc": ["body", *([record] if batch else []), *loc]}
    item.update(type=error["type"], field=name, msg=where + msg)
    if batch:
        item["record"] = record
    return item


def _summary(problems: list[dict[str, Any]], count: int) -> str:
    message = "; ".join(p["msg"] for p in problems[:3])
    if count > 3:
        more = count - 3
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return message


def _not_json(errors: list[dict[str, Any]]) -> BadRequest | None:
    if errors[0]["type"] == "json_invalid":
        return BadRequest(400, f"the body is not valid JSON: {errors[0]['ctx']['error']}")
    return None


def too_many(records: int, limit: int) -> BadRequest:
    """A 422 for a batch over the batch limit."""
    return BadRequest(
        422, f"batch of {records} records is over the limit of {limit} (MLOPS_KIT_MAX_BATCH)"
    )


def records_refused(exc: ValidationError, models: Inputs, batch: bool) -> BadRequest:
    """A 4xx naming each record, field and problem of a body of records."""
    errors = exc.errors(include_url=False)
    top = errors[0]
    if bad_json := _not_json(errors):
        return bad_json
    if batch and top["type"] == "too_short" and not top["loc"]:
        return BadRequest(422, "empty batch: send at least one record")
    if batch and top["type"] == "too_long" and not top["loc"]:
        return too_many(top["ctx"]["actual_length"], models.max_batch)
    # an unknown field first: it is usually a typo of the missing one reported next to it
    errors.sort(
        key=lambda e: (e["loc"][0] if batch and e["loc"] else 0, e["type"] != "extra_forbidden")
    )
    problems = [_problem(e, models, batch) for e in errors[:MAX_PROBLEMS]]
    return BadRequest(422, _summary(problems, len(errors)), problems)


def _column_problem(error: dict[str, Any], models: Inputs) -> dict[str, Any]:
    loc = list(error["loc"])
    if len(loc) >= 2 and isinstance(loc[1], int):  # one value of a column: as for a record
        item = _problem({**error, "loc": (loc[1], loc[0], *loc[2:])}, models, batch=True)
        item["loc"] = ["body", *loc]
        return item
    name = str(loc[0]) if loc else None
    kind, value, field = error["type"], error.get("input"), models.input_named(name)
    if kind == "missing" and field:
        msg = f"column '{name}' is missing ({field.describe()}, one per row)"
    elif kind == "extra_forbidden":
        msg = f"'{name}' is not an input of the model; its inputs are: {models.listing}"
    elif kind == "list_type":
        msg = f"column '{name}' must be an array of values, got {type_name(value)} {show(value)}"
    elif kind == "too_short":
        msg = f"column '{name}' is empty: send at least one row"
    elif kind == "too_long":
        rows = error["ctx"]["actual_length"]
        msg = f"column '{name}' has {rows} rows, over the limit of {models.max_batch} rows"
    else:
        msg = error["msg"]
    return {"loc": ["body", *loc], "type": kind, "field": name, "msg": msg}


def columns_refused(exc: ValidationError, models: Inputs) -> BadRequest:
    """A 4xx naming each column and row of a column-wise batch."""
    errors = exc.errors(include_url=False)
    top = errors[0]
    if bad_json := _not_json(errors):
        return bad_json
    if top["type"] == "dict_type" and not top["loc"]:
        got = type_name(top.get("input"))
        return BadRequest(
            422, f"send the batch as a JSON object of columns, {{field: [values]}}; got {got}"
        )
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")
    problems = [_column_problem(e, models) for e in errors[:MAX_PROBLEMS]]
    return BadRequest(422, _summary(problems, len(errors)), problems)
