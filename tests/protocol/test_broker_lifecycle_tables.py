"""BrokerRegistration (62), BrokerHeartbeat (63) and AllocateProducerIds (67): the tables say what
Kafka's JSON specs say, and they are controller-listener APIs the broker's
client listener never advertises. (Every version's random round trip is in
test_codec_roundtrip.py, which walks every table.)"""

from __future__ import annotations

import uuid

import pytest

from riverlog.broker.handlers import build_registry, default_modules
from riverlog.client.protocol import codec
from riverlog.client.protocol.messages import APIS
from riverlog.client.protocol.schema import parse_versions

def _names(message, version: int) -> list[str]:
    return [f.name for f in message.fields if f.versions[0] <= version <= f.versions[1]]


@pytest.mark.parametrize(("key", "versions", "request_fields", "response_fields"), [
    (62, range(0, 5),
     {0: ["broker_id", "cluster_id", "incarnation_id", "listeners", "features", "rack"],
      1: ["is_migrating_zk_broker"], 2: ["log_dirs"], 3: ["previous_broker_epoch"]},
     {0: ["throttle_time_ms", "error_code", "broker_epoch"]}),
    (63, range(0, 2),
     {0: ["broker_id", "broker_epoch", "current_metadata_offset", "want_fence", "want_shut_down"],
      1: ["offline_log_dirs"]},
     {0: ["throttle_time_ms", "error_code", "is_caught_up", "is_fenced", "should_shut_down"]}),
    (67, range(0, 1), {0: ["broker_id", "broker_epoch"]},
     {0: ["throttle_time_ms", "error_code", "producer_id_start", "producer_id_len"]}),
])  # fmt: skip
def test_tables_have_kip_631s_versions_and_fields(key, versions, request_fields, response_fields):
    """Checked against Kafka's JSON message specs when the tables were
    written; here the facts themselves, so the test needs no file outside
    the project: flexible from v0, and the fields each version adds."""
    api = APIS[key]
    for message, added in ((api.request, request_fields), (api.response, response_fields)):
        assert message.valid == parse_versions(f"{versions[0]}-{versions[-1]}")
        assert message.flexible == parse_versions("0+")
        for version in versions:
            expected = [name for since, names in sorted(added.items()) if since <= version for name in names]
            assert _names(message, version) == expected, (key, version)


def test_a_heartbeat_round_trips_with_its_tagged_offline_dirs():
    body = {"broker_id": 2, "broker_epoch": 17, "current_metadata_offset": 40, "want_fence": False,
            "want_shut_down": True, "offline_log_dirs": [uuid.UUID(int=5)]}  # fmt: skip
    request = APIS[63].request
    assert codec.decode(request, 1, codec.encode(request, 1, body)) == body
    v0 = codec.decode(request, 0, codec.encode(request, 0, body))
    assert v0 == {**body, "offline_log_dirs": []}  # not on the wire before v1
    answer = codec.decode(APIS[63].response, 0, codec.encode(APIS[63].response, 0, {}))
    assert answer["is_fenced"] is True and answer["is_caught_up"] is False  # the spec's defaults


def test_a_registration_carries_listeners_rack_and_previous_epoch():
    body = {"broker_id": 3, "cluster_id": "c", "incarnation_id": uuid.UUID(int=9),
            "listeners": [{"name": "PLAINTEXT", "host": "h", "port": 9094, "security_protocol": 0}],
            "features": [{"name": "metadata.version", "min_supported_version": 1, "max_supported_version": 21}],
            "rack": None, "is_migrating_zk_broker": False, "log_dirs": [uuid.UUID(int=1)],
            "previous_broker_epoch": 12}  # fmt: skip
    request = APIS[62].request
    assert codec.decode(request, 4, codec.encode(request, 4, body)) == body
    response = APIS[62].response
    assert codec.decode(response, 0, codec.encode(response, 0, {}))["broker_epoch"] == -1


def test_lifecycle_apis_are_not_served_on_the_client_listener():
    registry = build_registry(default_modules())
    assert 62 not in registry and 63 not in registry and 67 not in registry
