"""Declarative message tables: what Kafka's JSON specs say, as Python data.

A table is a `Message` (name, api key, valid and flexible versions) holding
`Field`s. Field names are snake_case; decoded messages are plain dicts keyed
by them. Types are the spec's primitive names ("int32", "string", "records",
"uuid", ...), "[]<primitive>" for primitive arrays, or a struct built with
`array()` (a struct array) or `struct()` (a single nested struct).

Version ranges use the spec's syntax: "0+", "3-7", "5", "none".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field as dc_field
from typing import Any

MAX_VERSION = 0x7FFF
_MISSING: Any = object()


def parse_versions(spec: str) -> tuple[int, int] | None:
    """'3+' -> (3, MAX), '3-7' -> (3, 7), '5' -> (5, 5), 'none' -> None."""
    if spec == "none":
        return None
    if spec.endswith("+"):
        return int(spec[:-1]), MAX_VERSION
    lo, _, hi = spec.partition("-")
    return int(lo), int(hi or lo)


def in_range(rng: tuple[int, int] | None, version: int) -> bool:
    return rng is not None and rng[0] <= version <= rng[1]


_TYPE_DEFAULTS: dict[str, Any] = {
    "bool": False, "int8": 0, "int16": 0, "int32": 0, "int64": 0,
    "uint16": 0, "uint32": 0, "float64": 0.0, "string": "",
    "bytes": b"", "records": None, "uuid": uuid.UUID(int=0),
}


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # primitive name, "[]<primitive>", "[]" (struct array) or "{}" (struct)
    versions: tuple[int, int] | None
    nullable: tuple[int, int] | None = None
    tag: int | None = None
    tagged: tuple[int, int] | None = None
    fields: tuple[Field, ...] = ()
    explicit_default: Any = _MISSING

    def default(self) -> Any:
        """The value used when the field is absent: a fresh object each call."""
        if self.type == "[]" or self.type.startswith("[]"):
            return []
        if self.type == "{}":
            return {f.name: f.default() for f in self.fields}
        if self.explicit_default is not _MISSING:
            return self.explicit_default
        return _TYPE_DEFAULTS[self.type]

    @property
    def is_struct(self) -> bool:
        return self.type in ("[]", "{}")


def f(name: str, type: str, versions: str = "0+", *, nullable: str = "none",
      default: Any = _MISSING, tag: int | None = None, tagged: str = "none") -> Field:
    """A primitive field or a primitive array ("[]int32")."""
    base = type[2:] if type.startswith("[]") else type
    if base not in _TYPE_DEFAULTS:
        raise ValueError(f"unknown type {type!r} for {name}")
    return Field(name, type, parse_versions(versions), parse_versions(nullable),
                 tag, parse_versions(tagged), (), default)


def array(name: str, versions: str, *fields: Field, nullable: str = "none",
          tag: int | None = None, tagged: str = "none") -> Field:
    """An array of structs, each element a dict of `fields`."""
    return Field(name, "[]", parse_versions(versions), parse_versions(nullable),
                 tag, parse_versions(tagged), fields)


def struct(name: str, versions: str, *fields: Field, nullable: str = "none",
           tag: int | None = None, tagged: str = "none") -> Field:
    """A single nested struct (a dict of `fields`)."""
    return Field(name, "{}", parse_versions(versions), parse_versions(nullable),
                 tag, parse_versions(tagged), fields)


@dataclass(frozen=True)
class Message:
    """One request or response body; the two share valid and flexible versions."""

    name: str
    api_key: int
    valid: tuple[int, int]
    flexible: tuple[int, int] | None
    fields: tuple[Field, ...] = dc_field(default=())

    def is_flexible(self, version: int) -> bool:
        return in_range(self.flexible, version)

    def is_valid(self, version: int) -> bool:
        return self.valid[0] <= version <= self.valid[1]


def message(name: str, api_key: int, valid: str, flexible: str, *fields: Field) -> Message:
    rng = parse_versions(valid)
    assert rng is not None, name
    return Message(name, api_key, rng, parse_versions(flexible), fields)


@dataclass(frozen=True)
class Api:
    """A request and response table pair, one per API module."""

    key: int
    name: str
    request: Message
    response: Message

    @property
    def valid(self) -> tuple[int, int]:
        return self.request.valid
