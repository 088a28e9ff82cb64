"""The API tables, one module per API, indexed by API key."""

from ..schema import Api
from . import (
    alter_configs,
    api_versions,
    create_partitions,
    create_topics,
    delete_groups,
    delete_records,
    delete_topics,
    describe_cluster,
    describe_configs,
    describe_groups,
    fetch,
    find_coordinator,
    heartbeat,
    incremental_alter_configs,
    init_producer_id,
    join_group,
    leave_group,
    list_groups,
    list_offsets,
    metadata,
    offset_commit,
    offset_delete,
    offset_fetch,
    produce,
    sync_group,
)

APIS: dict[int, Api] = {
    m.API.key: m.API
    for m in (
        produce, fetch, list_offsets, metadata, offset_commit, offset_fetch,
        find_coordinator, join_group, heartbeat, leave_group, sync_group,
        describe_groups, list_groups, api_versions, create_topics,
        delete_topics, delete_records, init_producer_id, describe_configs,
        alter_configs, create_partitions, delete_groups,
        incremental_alter_configs, offset_delete, describe_cluster,
    )
}
