"""DescribeConfigs (0-2): topic configs, and this broker's configs read-only.

Resource types: 2 topic, 4 broker; anything else is INVALID_REQUEST. A null
(or empty) key list means every config. Config sources as Kafka reports
them: TOPIC_CONFIG (1) for a topic override, STATIC_BROKER_CONFIG (4) for a
value set in the broker's config (its ``log.*`` name), DEFAULT_CONFIG (5)
for the built-in default. v0 has ``is_default`` instead of the source; v1+
adds synonyms when asked (most specific first, as Kafka lists them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from riverlog.broker.config import BrokerConfig, broker_names_of_topic_configs
from riverlog.broker.handlers.config_resources import BROKER, TOPIC
from riverlog.broker.metadata.validation import topic_name_error
from riverlog.broker.storage.log_config import LogConfig
from riverlog.client.protocol import ApiKey, ErrorCode

if TYPE_CHECKING:
    from riverlog.broker.handlers import RequestContext
    from riverlog.broker.metadata.image import MetadataImage

API_KEY = ApiKey.DESCRIBE_CONFIGS
MIN_VERSION = 0
MAX_VERSION = 2  # 3 adds documentation/config_type, 4 is flexible


TOPIC_CONFIG = 1
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5

# topic config name -> the broker config that sets its default (retention.ms -> log.retention.ms)
BROKER_SYNONYM = broker_names_of_topic_configs()
_BUILT_IN = LogConfig().to_properties()


async def handle(ctx: RequestContext, request: dict) -> dict:
    config = ctx.services.config
    include_synonyms = ctx.api_version >= 1 and request.get("include_synonyms", False)
    results = []
    for resource in request["resources"]:
        keys = resource["configuration_keys"]
        wanted = set(keys) if keys else None
        out = {
            "error_code": 0,
            "error_message": None,
            "resource_type": resource["resource_type"],
            "resource_name": resource["resource_name"],
            "configs": [],
        }
        try:
            if resource["resource_type"] == TOPIC:
                entries = _topic_entries(ctx.services.metadata.image, config.log_defaults, resource["resource_name"])
            elif resource["resource_type"] == BROKER:
                entries = _broker_entries(config, resource["resource_name"])
            else:
                raise _Refused(ErrorCode.INVALID_REQUEST, f"Unsupported resource type {resource['resource_type']}")
        except _Refused as e:
            out["error_code"], out["error_message"] = int(e.code), e.message
        else:
            out["configs"] = [
                _encode(entry, ctx.api_version, include_synonyms)
                for entry in entries
                if wanted is None or entry["name"] in wanted
            ]
        results.append(out)
    return {"throttle_time_ms": 0, "results": results}


class _Refused(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _topic_entries(image: MetadataImage, log_defaults: LogConfig, name: str) -> list[dict]:
    topic = image.topics.get(name)
    if topic is None:
        if (msg := topic_name_error(name)) is not None:
            raise _Refused(ErrorCode.INVALID_TOPIC_EXCEPTION, msg)
        raise _Refused(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic {name} does not exist.")
    static = log_defaults.to_properties()
    entries = []
    for key in sorted(_BUILT_IN):
        synonyms = []
        if key in topic.configs:
            synonyms.append((key, topic.configs[key], TOPIC_CONFIG))
        broker_name = BROKER_SYNONYM.get(key)
        if broker_name is not None and static[key] != _BUILT_IN[key]:
            synonyms.append((broker_name, static[key], STATIC_BROKER_CONFIG))
        synonyms.append((broker_name or key, _BUILT_IN[key], DEFAULT_CONFIG))
        _, value, source = synonyms[0]
        entries.append({"name": key, "value": value, "read_only": False, "source": source, "synonyms": synonyms})
    return entries


def _broker_entries(config: BrokerConfig, name: str) -> list[dict]:
    node_id = config.node_id
    if name == "":
        return []  # cluster-wide dynamic defaults: riverlog has none
    if name != str(node_id):
        raise _Refused(
            ErrorCode.INVALID_REQUEST, f"Unexpected broker id, expected {node_id} or empty string, but received {name}"
        )
    defaults = BrokerConfig().to_properties()
    entries = []
    for key, value in sorted(config.to_properties().items()):
        source = DEFAULT_CONFIG if defaults.get(key) == value else STATIC_BROKER_CONFIG
        synonyms = [(key, value, source)]
        if source != DEFAULT_CONFIG and key in defaults:
            synonyms.append((key, defaults[key], DEFAULT_CONFIG))
        entries.append({"name": key, "value": value, "read_only": True, "source": source, "synonyms": synonyms})
    return entries


def _encode(entry: dict, version: int, include_synonyms: bool) -> dict:
    out = {"name": entry["name"], "value": entry["value"], "read_only": entry["read_only"], "is_sensitive": False}
    if version == 0:
        out["is_default"] = entry["source"] == DEFAULT_CONFIG
    else:
        out["config_source"] = entry["source"]
        out["synonyms"] = (
            [{"name": n, "value": v, "source": s} for n, v, s in entry["synonyms"]] if include_synonyms else []
        )
    return out
