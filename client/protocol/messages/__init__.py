"""The API tables, one module per API, indexed by API key."""

from ..schema import Api
from . import (
    alter_configs,
    api_versions,
    create_partitions,
    create_topics,
    delete_records,
    delete_topics,
    describe_cluster,
    describe_configs,
    fetch,
    find_coordinator,
    incremental_alter_configs,
    init_producer_id,
    list_offsets,
    metadata,
    produce,
)

APIS: dict[int, Api] = {
    m.API.key: m.API
    for m in (
        produce, fetch, list_offsets, metadata, api_versions,
        find_coordinator, create_topics, delete_topics, delete_records,
        init_producer_id, describe_configs, alter_configs, create_partitions,
        incremental_alter_configs, describe_cluster,
    )
}
