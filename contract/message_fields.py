"""Field checks shared by the message records (contract/messages.py, contract/readout_messages.py):
each raises MessageError with one line naming the field. Stdlib only."""

from __future__ import annotations

import math
from dataclasses import MISSING, fields
from typing import Any

MAX_COUNT = 2**53 - 1  # integers stay exact in every JSON reader (JavaScript included)


class MessageError(ValueError):
    """A message that does not follow the schema (wrong framing, encoding, version or fields)."""


# --- field checks shared by construction and decoding -------------------------------------------


def _number(name: str, value: Any, lo: float | None = None, hi: float | None = None) -> float:
    # bool is an int subclass in Python but not a number in JSON Schema; reject it here too.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MessageError(f"{name} must be a finite number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise MessageError(f"{name} must be within [{lo}, {hi}], got {value!r}")
    return float(value)


def _integer(name: str, value: Any, lo: int = 0) -> int:
    # JSON Schema counts 3.0 as an integer; accept it so both validators agree.
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= MAX_COUNT:
        raise MessageError(f"{name} must be an integer in [{lo}, 2^53-1], got {value!r:.40}")
    return value


def _string(name: str, value: Any, *, non_empty: bool = False, max_len: int = 10_000) -> str:
    if not isinstance(value, str) or (non_empty and not value) or len(value) > max_len:
        raise MessageError(f"{name} must be a string (non-empty: {non_empty}), got {value!r:.80}")
    return value


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise MessageError(f"{name} must be true or false, got {value!r}")
    return value


def _optional(check: Any, name: str, value: Any, *args: Any) -> Any:
    return None if value is None else check(name, value, *args)


def _object(
    name: str, value: Any, keys: tuple[str, ...], required: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """`value` as an object with only `keys`, each of `required` (default: all keys) present."""
    if not isinstance(value, dict):
        raise MessageError(f"{name} must be an object, got {type(value).__name__}")
    missing = [k for k in (keys if required is None else required) if k not in value]
    extra = [k for k in value if k not in keys]
    if missing or extra:
        raise MessageError(f"{name}: missing fields {missing}, unknown fields {extra}")
    return value


def optional_fields(cls: type) -> tuple[str, ...]:
    """Fields added to schema version 1 after its first release: they default to None, and a
    decoder accepts them missing (an earlier publisher or recording) as well as null."""
    return tuple(f.name for f in fields(cls) if f.default is None)


def build_record(cls: type, name: str, value: Any, nested: dict[str, type]) -> Any:
    """The record `cls` from a decoded JSON object, nested records (`nested`: field -> record
    type, each with its own NESTED mapping) built the same way; optional fields may be missing."""
    keys = tuple(f.name for f in fields(cls))
    required = tuple(f.name for f in fields(cls) if f.default is MISSING)
    obj = _object(name, value, keys, required)
    kwargs: dict[str, Any] = {}
    for key, item in obj.items():
        kind = nested.get(key)
        if kind is not None and item is not None and hasattr(kind, "build"):
            item = kind.build(f"{name}.{key}", item, build_record)  # a list of records
        elif kind is not None and item is not None:
            item = build_record(kind, f"{name}.{key}", item, getattr(kind, "NESTED", {}))
        kwargs[key] = item
    try:
        return cls(**kwargs)
    except TypeError as exc:  # e.g. a non-hashable where a scalar belongs
        raise MessageError(str(exc)) from exc
