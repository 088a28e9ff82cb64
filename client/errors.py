"""The client's own exceptions, beside the per-code Kafka errors.

A broker's error code becomes the `client.protocol.errors` class for that
code (``error_for_code``); what goes wrong on our side of the wire, or in
reaching a broker at all, is one of these.
"""

from __future__ import annotations

from riverlog.client.protocol.errors import KafkaError, error_for_code


class ClientError(Exception):
    """Base of the errors raised by riverlog's client itself."""


class ConfigError(ClientError, ValueError):
    """A client configuration name or value is wrong."""


class KafkaConnectionError(ClientError):
    """A connection to a broker could not be made or was lost. Retriable:
    the request may or may not have reached the broker."""

    retriable = True


class KafkaTimeoutError(ClientError, TimeoutError):
    """A request or an operation did not finish within its timeout."""

    retriable = True


class UnsupportedVersionError(ClientError):
    """The broker supports no version of an API that this client speaks."""


class ClosedError(ClientError):
    """The producer, consumer or admin client was closed."""


def raise_for_code(code: int, context: str = "") -> None:
    """Raise the Kafka error for a response's error code; nothing for NONE."""
    cls = error_for_code(code)
    if cls is not None:
        raise cls(f"{cls.code.name}{': ' + context if context else ''}")


def is_retriable(exc: BaseException) -> bool:
    return bool(getattr(exc, "retriable", False))


__all__ = [
    "ClientError", "ClosedError", "ConfigError", "KafkaConnectionError", "KafkaError",
    "KafkaTimeoutError", "UnsupportedVersionError", "is_retriable", "raise_for_code",
]
