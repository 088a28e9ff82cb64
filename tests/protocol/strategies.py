"""Hypothesis strategies built from the message tables, and the expected
shape of a decoded message (every table field, defaults where not on the wire)."""

from __future__ import annotations

from hypothesis import strategies as st

from riverlog.client.protocol.messages import APIS
from riverlog.client.protocol.schema import Field, Message, in_range

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
_PRIMS = {
    "bool": st.booleans(),
    "int8": st.integers(-(2**7), 2**7 - 1),
    "int16": st.integers(-(2**15), 2**15 - 1),
    "int32": st.integers(-(2**31), 2**31 - 1),
    "int64": st.integers(-(2**63), 2**63 - 1),
    "uint16": st.integers(0, 2**16 - 1),
    "uint32": st.integers(0, 2**32 - 1),
    "uuid": st.uuids(),
    "string": text,
    "bytes": st.binary(max_size=16),
    "records": st.binary(max_size=32),
}


def field_values(fld: Field, version: int) -> st.SearchStrategy:
    if fld.type == "[]":
        base = st.lists(struct_values(fld.fields, version), max_size=2)
    elif fld.type == "{}":
        base = struct_values(fld.fields, version)
    elif fld.type.startswith("[]"):
        base = st.lists(_PRIMS[fld.type[2:]], max_size=3)
    else:
        base = _PRIMS[fld.type]
    return st.none() | base if in_range(fld.nullable, version) else base


def struct_values(fields: tuple[Field, ...], version: int) -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {f.name: field_values(f, version) for f in fields if in_range(f.versions, version)}
    )


def message_values(msg: Message, version: int) -> st.SearchStrategy:
    return struct_values(msg.fields, version)


def expected(fields: tuple[Field, ...], version: int, value: dict) -> dict:
    """What decoding the encoding of `value` must give."""
    out = {}
    for f in fields:
        if not in_range(f.versions, version) or f.name not in value:
            out[f.name] = f.default()
        elif f.type == "[]" and value[f.name] is not None:
            out[f.name] = [expected(f.fields, version, v) for v in value[f.name]]
        elif f.type == "{}" and value[f.name] is not None:
            out[f.name] = expected(f.fields, version, value[f.name])
        else:
            out[f.name] = value[f.name]
    return out


def all_message_versions() -> list[tuple[str, Message, int]]:
    cases = []
    for api in APIS.values():
        for msg in (api.request, api.response):
            for v in range(msg.valid[0], msg.valid[1] + 1):
                cases.append((f"{msg.name}-v{v}", msg, v))
    return cases
