"""ApiVersions (18): the versions of every API this broker serves.

Built from the handler registry. A request for a version above ours gets, as
KIP-511 says, a v0 body with UNSUPPORTED_VERSION and our ApiVersions range,
so the client retries with a version we speak (see broker/net/connection.py,
which sends it before any body is decoded).
"""

from __future__ import annotations

from riverlog.client.protocol import ApiKey, ErrorCode

API_KEY = ApiKey.API_VERSIONS
MIN_VERSION = 0
MAX_VERSION = 3  # v3 is the first flexible version (KIP-511); what today's clients send


def api_keys(registry) -> list[dict]:
    return [
        {"api_key": s.api_key, "min_version": s.min_version, "max_version": s.max_version}
        for s in sorted(registry.values(), key=lambda s: s.api_key)
    ]


def unsupported_version_body() -> dict:
    """The KIP-511 reply body (encoded at v0) to an ApiVersions version we lack."""
    return {
        "error_code": ErrorCode.UNSUPPORTED_VERSION,
        "api_keys": [{"api_key": API_KEY, "min_version": MIN_VERSION, "max_version": MAX_VERSION}],
    }


def answer(registry) -> dict:
    """The answer of the listener whose handlers ``registry`` holds: it advertises what it serves, nothing else."""
    return {"error_code": ErrorCode.NONE, "api_keys": api_keys(registry), "throttle_time_ms": 0}


def handle(ctx, request: dict) -> dict:
    return answer(ctx.services.registry)  # the client listener's
