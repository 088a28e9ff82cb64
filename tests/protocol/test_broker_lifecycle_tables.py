"""BrokerRegistration (62) and BrokerHeartbeat (63): the tables say what the
pack's JSON specs say, and they are controller-listener APIs the broker's
client listener never advertises. (Every version's random round trip is in
test_codec_roundtrip.py, which walks every table.)"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from broker.handlers import build_registry, default_modules
from client.protocol import codec
from client.protocol.messages import APIS
from client.protocol.schema import parse_versions

SPECS = Path("/work/shared/kafka-protocol/messages")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _spec(name: str) -> dict:
    text = "\n".join(line for line in (SPECS / f"{name}.json").read_text().splitlines()
                     if not line.lstrip().startswith("//"))  # fmt: skip
    return json.loads(text)


def _shape(fields) -> list:
    return [(f.name, f.type, f.versions, f.nullable, f.tag, f.tagged, _shape(f.fields)) for f in fields]


def _spec_shape(fields: list[dict]) -> list:
    out = []
    for f in fields:
        struct = "fields" in f
        kind = "[]" if struct else f["type"]
        tagged = parse_versions(f.get("taggedVersions", "none"))
        out.append((_snake(f["name"]), kind, parse_versions(f["versions"]),
                    parse_versions(f.get("nullableVersions", "none")), int(f["tag"]) if "tag" in f else None,
                    tagged, _spec_shape(f.get("fields", []))))  # fmt: skip
    return out


@pytest.mark.skipif(not SPECS.exists(), reason="the protocol pack is not on this machine")
@pytest.mark.parametrize(("key", "name"), [(62, "BrokerRegistration"), (63, "BrokerHeartbeat")])
def test_tables_match_the_json_specs(key, name):
    api = APIS[key]
    for message, spec in ((api.request, _spec(f"{name}Request")), (api.response, _spec(f"{name}Response"))):
        assert message.valid == parse_versions(spec["validVersions"])
        assert message.flexible == parse_versions(spec["flexibleVersions"])
        assert _shape(message.fields) == _spec_shape(spec["fields"])


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
    assert 62 not in registry and 63 not in registry
