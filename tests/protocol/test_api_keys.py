"""ApiKey and the message tables name the same API by the same number."""

import re

from riverlog.client.protocol import ApiKey
from riverlog.client.protocol.headers import request_header_version
from riverlog.client.protocol.messages import APIS

# Named without a table (see api_keys.py).
WITHOUT_TABLE = {ApiKey.CONTROLLED_SHUTDOWN}


def kafka_name(table_name: str) -> str:
    """"InitProducerId" -> "INIT_PRODUCER_ID", Kafka's ApiKeys spelling."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", table_name).upper()


def test_every_table_has_the_member_of_its_name_and_number():
    for key, api in APIS.items():
        assert ApiKey[kafka_name(api.name)] == key, api.name
        assert api.key == api.request.api_key == api.response.api_key == key, api.name
        assert api.request.name == api.name + "Request" and api.response.name == api.name + "Response"


def test_every_member_has_a_table_or_is_named_without_one():
    assert set(ApiKey) - set(APIS) == WITHOUT_TABLE
    assert not WITHOUT_TABLE & set(APIS)


def test_a_wire_int_finds_the_members_entry():
    # Headers decoded from the wire carry plain ints.
    assert APIS[int.from_bytes(b"\x00\x12", "big")] is APIS[ApiKey.API_VERSIONS]
    assert request_header_version(int(ApiKey.CONTROLLED_SHUTDOWN), 0) == 0
