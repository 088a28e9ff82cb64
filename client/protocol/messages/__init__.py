"""The API tables, one module per API, indexed by API key.

Having a table does not make the broker serve an API: ApiVersions is built
from the handlers (broker/handlers), so the KRaft quorum's tables (Vote,
BeginQuorumEpoch, EndQuorumEpoch, FetchSnapshot) and the broker lifecycle's
(BrokerRegistration, BrokerHeartbeat) and AllocateProducerIds are here for the controller listener's
wire code and are not advertised to clients. DescribeQuorum is both: served
on the controller listener and, for operators, on the client listener.
"""

from ..schema import Api
from . import (
    allocate_producer_ids,
    alter_configs,
    api_versions,
    begin_quorum_epoch,
    broker_heartbeat,
    broker_registration,
    create_partitions,
    create_topics,
    delete_groups,
    delete_records,
    delete_topics,
    describe_cluster,
    describe_configs,
    describe_groups,
    describe_quorum,
    end_quorum_epoch,
    fetch,
    fetch_snapshot,
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
    vote,
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
        vote, begin_quorum_epoch, end_quorum_epoch, describe_quorum,
        fetch_snapshot, broker_registration, broker_heartbeat,
        allocate_producer_ids,
    )
}
