"""Cross-check against kafka-python 3's independent codec.

Ours encodes; kafka-python decodes those bytes and re-encodes them; the bytes
must be identical, and ours must decode kafka-python's encoding back to the
value. Only versions kafka-python has a schema for are checked.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.protocol.admin.cluster import (
    DescribeClusterRequest,
    DescribeClusterResponse,
    DescribeQuorumRequest,
    DescribeQuorumResponse,
)
from kafka.protocol.admin.configs import (
    AlterConfigsRequest,
    AlterConfigsResponse,
    DescribeConfigsRequest,
    DescribeConfigsResponse,
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)
from kafka.protocol.admin.groups import (
    DeleteGroupsRequest,
    DeleteGroupsResponse,
    DescribeGroupsRequest,
    DescribeGroupsResponse,
    ListGroupsRequest,
    ListGroupsResponse,
)
from kafka.protocol.admin.topics import (
    CreatePartitionsRequest,
    CreatePartitionsResponse,
    CreateTopicsRequest,
    CreateTopicsResponse,
    DeleteRecordsRequest,
    DeleteRecordsResponse,
    DeleteTopicsRequest,
    DeleteTopicsResponse,
)
from kafka.protocol.consumer.fetch import FetchRequest, FetchResponse
from kafka.protocol.consumer.group import (
    HeartbeatRequest,
    HeartbeatResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    LeaveGroupResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetDeleteRequest,
    OffsetDeleteResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    SyncGroupRequest,
    SyncGroupResponse,
)
from kafka.protocol.consumer.offsets import ListOffsetsRequest, ListOffsetsResponse
from kafka.protocol.metadata import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    FindCoordinatorRequest,
    FindCoordinatorResponse,
    MetadataRequest,
    MetadataResponse,
)
from kafka.protocol.producer.produce import ProduceRequest, ProduceResponse
from kafka.protocol.producer.transaction import InitProducerIdRequest, InitProducerIdResponse

from riverlog.client.protocol import codec
from riverlog.client.protocol.messages import APIS

from .strategies import expected, message_values

THEIRS = {
    cls.__name__: cls
    for cls in (
        ProduceRequest, ProduceResponse, FetchRequest, FetchResponse,
        ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
        ApiVersionsRequest, ApiVersionsResponse,
        FindCoordinatorRequest, FindCoordinatorResponse,
        InitProducerIdRequest, InitProducerIdResponse,
        CreateTopicsRequest, CreateTopicsResponse,
        DeleteTopicsRequest, DeleteTopicsResponse,
        CreatePartitionsRequest, CreatePartitionsResponse,
        DescribeConfigsRequest, DescribeConfigsResponse,
        AlterConfigsRequest, AlterConfigsResponse,
        IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
        DeleteRecordsRequest, DeleteRecordsResponse,
        DescribeClusterRequest, DescribeClusterResponse,
        DescribeQuorumRequest, DescribeQuorumResponse,
        OffsetCommitRequest, OffsetCommitResponse,
        OffsetFetchRequest, OffsetFetchResponse,
        JoinGroupRequest, JoinGroupResponse,
        HeartbeatRequest, HeartbeatResponse,
        LeaveGroupRequest, LeaveGroupResponse,
        SyncGroupRequest, SyncGroupResponse,
        DescribeGroupsRequest, DescribeGroupsResponse,
        ListGroupsRequest, ListGroupsResponse,
        DeleteGroupsRequest, DeleteGroupsResponse,
        OffsetDeleteRequest, OffsetDeleteResponse,
    )
}

# kafka-python has no schema for the quorum's controller-only RPCs (Vote,
# BeginQuorumEpoch, EndQuorumEpoch, FetchSnapshot): those are left out.
CASES = [
    (f"{msg.name}-v{v}", msg, v)
    for api in APIS.values()
    for msg in (api.request, api.response)
    if msg.name in THEIRS
    for v in range(msg.valid[0], min(msg.valid[1], THEIRS[msg.name].max_version) + 1)
]


@pytest.mark.parametrize(("name", "msg", "version"), CASES, ids=[c[0] for c in CASES])
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_kafka_python_reads_and_rewrites_our_bytes_identically(name, msg, version, data):
    value = data.draw(message_values(msg, version))
    # kafka-python reads any ApiVersions response carrying an error as v0 (KIP-511).
    if msg.name == "ApiVersionsResponse":
        value["error_code"] = 0
    ours = codec.encode(msg, version, value)
    theirs_obj = THEIRS[msg.name].decode(ours, version=version)
    theirs_obj._header = None  # kafka-python's decode leaves this slot unset
    theirs = bytes(theirs_obj.encode(version=version))
    assert theirs == ours
    assert codec.decode(msg, version, theirs) == expected(msg.fields, version, value)


def test_kafka_python_metadata_request_decodes_to_our_fields():
    raw = bytes(MetadataRequest[4](
        topics=[MetadataRequest.MetadataRequestTopic(name="orders")],
        allow_auto_topic_creation=False,
    ).encode())
    body = codec.decode(APIS[3].request, 4, raw)
    assert [t["name"] for t in body["topics"]] == ["orders"]
    assert body["allow_auto_topic_creation"] is False
