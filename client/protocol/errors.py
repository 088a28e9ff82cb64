"""Kafka error codes, one exception class per code, and protocol violations.

Handlers put `ErrorCode` values into responses; the exception classes are for
clients that turn a response code into a raise. `ProtocolError` is separate:
it means the bytes themselves broke the protocol. As in h11, it is split into
`LocalProtocolError` (we tried to send something invalid) and
`RemoteProtocolError` (the peer sent something invalid).
"""

from __future__ import annotations

from enum import IntEnum


class ProtocolError(Exception):
    """The wire protocol was violated; the connection cannot be trusted."""


class LocalProtocolError(ProtocolError):
    """We were asked to encode something the protocol cannot express."""


class RemoteProtocolError(ProtocolError):
    """The peer's bytes are malformed (truncated, bad length, bad UTF-8...)."""


class FrameTooLarge(RemoteProtocolError):
    """A frame's length prefix is above the configured maximum."""


class UnsupportedApi(RemoteProtocolError):
    """A request names an API key or version we have no table for.

    Carries the key and version so a broker can answer ApiVersions with
    UNSUPPORTED_VERSION instead of only closing the connection.
    """

    def __init__(self, api_key: int, api_version: int) -> None:
        super().__init__(f"unsupported api_key={api_key} api_version={api_version}")
        self.api_key = api_key
        self.api_version = api_version


# (code, name, retriable) from Kafka's Errors.java. Retriable
# means the Java client's exception derives from RetriableException.
_CODES = """
-1 UNKNOWN_SERVER_ERROR n|0 NONE n|1 OFFSET_OUT_OF_RANGE n|2 CORRUPT_MESSAGE y
3 UNKNOWN_TOPIC_OR_PARTITION y|4 INVALID_FETCH_SIZE n|5 LEADER_NOT_AVAILABLE y
6 NOT_LEADER_OR_FOLLOWER y|7 REQUEST_TIMED_OUT y|8 BROKER_NOT_AVAILABLE n
9 REPLICA_NOT_AVAILABLE y|10 MESSAGE_TOO_LARGE n|11 STALE_CONTROLLER_EPOCH n
12 OFFSET_METADATA_TOO_LARGE n|13 NETWORK_EXCEPTION y|14 COORDINATOR_LOAD_IN_PROGRESS y
15 COORDINATOR_NOT_AVAILABLE y|16 NOT_COORDINATOR y|17 INVALID_TOPIC_EXCEPTION n
18 RECORD_LIST_TOO_LARGE n|19 NOT_ENOUGH_REPLICAS y|20 NOT_ENOUGH_REPLICAS_AFTER_APPEND y
21 INVALID_REQUIRED_ACKS n|22 ILLEGAL_GENERATION n|23 INCONSISTENT_GROUP_PROTOCOL n
24 INVALID_GROUP_ID n|25 UNKNOWN_MEMBER_ID n|26 INVALID_SESSION_TIMEOUT n
27 REBALANCE_IN_PROGRESS n|28 INVALID_COMMIT_OFFSET_SIZE n|29 TOPIC_AUTHORIZATION_FAILED n
30 GROUP_AUTHORIZATION_FAILED n|31 CLUSTER_AUTHORIZATION_FAILED n|32 INVALID_TIMESTAMP n
33 UNSUPPORTED_SASL_MECHANISM n|34 ILLEGAL_SASL_STATE n|35 UNSUPPORTED_VERSION n
36 TOPIC_ALREADY_EXISTS n|37 INVALID_PARTITIONS n|38 INVALID_REPLICATION_FACTOR n
39 INVALID_REPLICA_ASSIGNMENT n|40 INVALID_CONFIG n|41 NOT_CONTROLLER y|42 INVALID_REQUEST n
43 UNSUPPORTED_FOR_MESSAGE_FORMAT n|44 POLICY_VIOLATION n|45 OUT_OF_ORDER_SEQUENCE_NUMBER n
46 DUPLICATE_SEQUENCE_NUMBER n|47 INVALID_PRODUCER_EPOCH n|48 INVALID_TXN_STATE n
49 INVALID_PRODUCER_ID_MAPPING n|50 INVALID_TRANSACTION_TIMEOUT n|51 CONCURRENT_TRANSACTIONS y
52 TRANSACTION_COORDINATOR_FENCED n|53 TRANSACTIONAL_ID_AUTHORIZATION_FAILED n
54 SECURITY_DISABLED n|55 OPERATION_NOT_ATTEMPTED n|56 KAFKA_STORAGE_ERROR y
57 LOG_DIR_NOT_FOUND n|58 SASL_AUTHENTICATION_FAILED n|59 UNKNOWN_PRODUCER_ID n
60 REASSIGNMENT_IN_PROGRESS n|61 DELEGATION_TOKEN_AUTH_DISABLED n|62 DELEGATION_TOKEN_NOT_FOUND n
63 DELEGATION_TOKEN_OWNER_MISMATCH n|64 DELEGATION_TOKEN_REQUEST_NOT_ALLOWED n
65 DELEGATION_TOKEN_AUTHORIZATION_FAILED n|66 DELEGATION_TOKEN_EXPIRED n
67 INVALID_PRINCIPAL_TYPE n|68 NON_EMPTY_GROUP n|69 GROUP_ID_NOT_FOUND n
70 FETCH_SESSION_ID_NOT_FOUND y|71 INVALID_FETCH_SESSION_EPOCH y|72 LISTENER_NOT_FOUND y
73 TOPIC_DELETION_DISABLED n|74 FENCED_LEADER_EPOCH y|75 UNKNOWN_LEADER_EPOCH y
76 UNSUPPORTED_COMPRESSION_TYPE n|77 STALE_BROKER_EPOCH n|78 OFFSET_NOT_AVAILABLE y
79 MEMBER_ID_REQUIRED n|80 PREFERRED_LEADER_NOT_AVAILABLE y|81 GROUP_MAX_SIZE_REACHED n
82 FENCED_INSTANCE_ID n|83 ELIGIBLE_LEADERS_NOT_AVAILABLE y|84 ELECTION_NOT_NEEDED y
85 NO_REASSIGNMENT_IN_PROGRESS n|86 GROUP_SUBSCRIBED_TO_TOPIC n|87 INVALID_RECORD n
88 UNSTABLE_OFFSET_COMMIT y|89 THROTTLING_QUOTA_EXCEEDED y|90 PRODUCER_FENCED n
91 RESOURCE_NOT_FOUND n|92 DUPLICATE_RESOURCE n|93 UNACCEPTABLE_CREDENTIAL n
94 INCONSISTENT_VOTER_SET n|95 INVALID_UPDATE_VERSION n|96 FEATURE_UPDATE_FAILED n
97 PRINCIPAL_DESERIALIZATION_FAILURE n|98 SNAPSHOT_NOT_FOUND n|99 POSITION_OUT_OF_RANGE n
100 UNKNOWN_TOPIC_ID y|101 DUPLICATE_BROKER_REGISTRATION n|102 BROKER_ID_NOT_REGISTERED n
103 INCONSISTENT_TOPIC_ID y|104 INCONSISTENT_CLUSTER_ID n|105 TRANSACTIONAL_ID_NOT_FOUND n
106 FETCH_SESSION_TOPIC_ID_ERROR y|107 INELIGIBLE_REPLICA n|108 NEW_LEADER_ELECTED n
109 OFFSET_MOVED_TO_TIERED_STORAGE n|110 FENCED_MEMBER_EPOCH n|111 UNRELEASED_INSTANCE_ID n
112 UNSUPPORTED_ASSIGNOR n|113 STALE_MEMBER_EPOCH n|114 MISMATCHED_ENDPOINT_TYPE n
115 UNSUPPORTED_ENDPOINT_TYPE n|116 UNKNOWN_CONTROLLER_ID n|117 UNKNOWN_SUBSCRIPTION_ID n
118 TELEMETRY_TOO_LARGE n|119 INVALID_REGISTRATION n|120 TRANSACTION_ABORTABLE n
121 INVALID_RECORD_STATE n|122 SHARE_SESSION_NOT_FOUND y|123 INVALID_SHARE_SESSION_EPOCH y
124 FENCED_STATE_EPOCH n|125 INVALID_VOTER_KEY n|126 DUPLICATE_VOTER n|127 VOTER_NOT_FOUND n
128 INVALID_REGULAR_EXPRESSION n
"""
_TABLE = [e.split() for e in _CODES.replace("\n", "|").split("|") if e.strip()]

ErrorCode = IntEnum("ErrorCode", [(name, int(code)) for code, name, _ in _TABLE])
ErrorCode.__doc__ = "Kafka's error codes, with Kafka's numbers and names."
RETRIABLE: frozenset[ErrorCode] = frozenset(
    ErrorCode(int(code)) for code, _, r in _TABLE if r == "y"
)


class KafkaError(Exception):
    """Base of the per-code exceptions; `code` and `retriable` are per class."""

    code: ErrorCode = ErrorCode.UNKNOWN_SERVER_ERROR
    retriable: bool = False

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.code.name)


def _class_name(name: str) -> str:
    camel = "".join(part.capitalize() for part in name.split("_"))
    return camel if camel.endswith(("Exception", "Error")) else camel + "Error"


_BY_CODE: dict[int, type[KafkaError]] = {}
for _code in ErrorCode:
    if _code is ErrorCode.NONE:
        continue
    _cls = type(
        _class_name(_code.name),
        (KafkaError,),
        {"code": _code, "retriable": _code in RETRIABLE, "__module__": __name__},
    )
    _BY_CODE[_code] = _cls
    globals()[_cls.__name__] = _cls


def error_for_code(code: int) -> type[KafkaError] | None:
    """The exception class for `code`; None for NONE (0).

    Codes we do not know map to UNKNOWN_SERVER_ERROR, as Kafka's
    `Errors.forCode` does, so a newer peer's code still raises something.
    """
    if code == 0:
        return None
    return _BY_CODE.get(code, _BY_CODE[ErrorCode.UNKNOWN_SERVER_ERROR])
