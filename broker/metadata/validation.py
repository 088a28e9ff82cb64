"""Kafka's rules for topic names and topic configs. Pure.

Each check returns None when the input is valid, else the error message the
client sees (with INVALID_TOPIC_EXCEPTION or INVALID_CONFIG).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from riverlog.broker.storage.log import MAX_FILE_NAME_BYTES
from riverlog.broker.storage.log_config import LogConfig

MAX_TOPIC_NAME_CHARS = 249  # Kafka's Topic.MAX_NAME_LENGTH
_LEGAL = re.compile(r"^[a-zA-Z0-9._-]+$")
TOPIC_CONFIG_NAMES = frozenset(LogConfig().to_properties())


def topic_name_error(name: str) -> str | None:
    if not name:
        return "Topic name is illegal, it can't be empty"
    if name in (".", ".."):
        return "Topic name cannot be \".\" or \"..\""
    if len(name) > MAX_TOPIC_NAME_CHARS:
        return f"Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_CHARS} characters, topic name: {name}"
    if not _LEGAL.match(name):
        return (
            f"Topic name \"{name}\" is illegal, it contains a character other than "
            "ASCII alphanumerics, '.', '_' and '-'"
        )
    return None


def partition_dir_error(name: str, partitions: int) -> str | None:
    """Partitions up to ``partitions - 1`` each name a directory ``<topic>-<partition>``,
    which must fit a file name: 249 characters leave room for 5 digits (Kafka's
    limit is meant so); beyond, the broker could never create the log."""
    longest = len(name) + 1 + len(str(partitions - 1))
    if partitions >= 1 and longest > MAX_FILE_NAME_BYTES:
        return (f"Number of partitions {partitions} is too many for topic {name}: the directory of partition "
                f"{partitions - 1} would be named with {longest} bytes, more than {MAX_FILE_NAME_BYTES}")  # fmt: skip
    return None


def collision_error(name: str, existing: Iterable[str]) -> str | None:
    """Kafka refuses names equal to an existing one once '.' is read as '_' (metric names clash)."""
    key = name.replace(".", "_")
    for other in existing:
        if other != name and other.replace(".", "_") == key:
            return f"Topic '{name}' collides with existing topic: {other}"
    return None


def config_error(configs: Mapping[str, str | None], base: LogConfig) -> str | None:
    """Validate a full set of topic overrides (values, and limits between them) over the broker defaults."""
    for name, value in configs.items():
        if name not in TOPIC_CONFIG_NAMES:
            return f"Unknown topic config name: {name}"
        if value is None:
            return f"Null value not supported for topic config: {name}"
    try:
        LogConfig.from_properties(dict(configs), base)  # type: ignore[arg-type]
    except ValueError as e:  # ConfigError, from a value or from __post_init__'s limits
        return str(e)
    return None
