"""The ``riverlog`` command line: ``broker start`` and the storage tools
(``dump-log``, as Kafka's kafka-dump-log.sh)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from riverlog.client.cli import CLIENT_COMMANDS, StrictGroup, cluster


@click.group(cls=StrictGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="riverlog")
def main() -> None:
    """riverlog: a partitioned, replicated log broker that speaks the Kafka protocol."""


@main.group()
def broker() -> None:
    """Run a broker."""


def _parse_sets(values: tuple[str, ...]) -> dict[str, str]:
    props = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint="--set")
        if key.strip() in props:
            raise click.BadParameter(f"{key.strip()} given more than once", param_hint="--set")
        props[key.strip()] = value.strip()
    return props


@broker.command("start")
@click.option("--node-id", type=click.IntRange(0, 2**31 - 1), help="node.id (default 1)")
@click.option("--listen", metavar="HOST:PORT", help="listeners (default 127.0.0.1:9092)")
@click.option("--advertised", metavar="HOST:PORT", help="advertised.listeners (default: the listener)")
@click.option("--controller-listen", metavar="HOST:PORT", help="controller.listener: this voter's quorum listener")
@click.option("--controller-quorum", metavar="ID@HOST:PORT,...",
              help="controller.quorum.voters (default: a one-voter quorum of this node)")  # fmt: skip
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="log.dirs (default ./riverlog-data)")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="a Kafka server.properties-style file")  # fmt: skip
@click.option("--initial-cluster", is_flag=True, default=None,
              help="riverlog.initial.cluster: this voter may start with no data (a new cluster's first start)")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="any config, by its Kafka name (repeatable)")
def broker_start(node_id, listen, advertised, controller_listen, controller_quorum, data_dir, config_file,
                 initial_cluster, sets) -> None:  # fmt: skip
    """Start a broker; with no options, a single local broker on 127.0.0.1:9092
    with its data in ./riverlog-data. Stops cleanly on Ctrl-C or SIGTERM.

    In a cluster, a node whose --node-id is in --controller-quorum is a
    broker and a controller voter (it needs --controller-listen on its port
    in the quorum string); any other node is a broker-only observer."""
    import logging

    import trio

    from riverlog.broker.config import BrokerConfig, load_properties
    from riverlog.broker.meta_properties import check_new_voter
    from riverlog.broker.producer_ids import legacy_producer_id_floor
    from riverlog.broker.server import run_until_signalled
    from riverlog.broker.storage.checkpoint import CorruptCheckpointError
    from riverlog.broker.storage.log_config import ConfigError

    props: dict[str, str] = load_properties(config_file) if config_file else {}
    flags = {"node.id": node_id, "listeners": listen, "advertised.listeners": advertised, "log.dirs": data_dir,
             "controller.listener": controller_listen, "controller.quorum.voters": controller_quorum,
             "riverlog.initial.cluster": "true" if initial_cluster else None}  # fmt: skip
    props.update({name: str(value) for name, value in flags.items() if value is not None})
    props.update(_parse_sets(sets))
    try:
        config = BrokerConfig.from_properties(props)
        check_new_voter(config.metadata_dir, config.controller_quorum, config.node_id, config.initial_cluster)
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    try:
        legacy_producer_id_floor(config.log_dirs[0])  # checked again at start: here it is one line, no traceback
    except CorruptCheckpointError as e:
        raise click.ClickException(str(e)) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    trio.run(run_until_signalled, config)


@main.command("dump-log")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--print-records", is_flag=True, help="Print every record's offset, timestamp, key and value.")
def dump_log(files: tuple[Path, ...], print_records: bool) -> None:
    """Print the record batches of segment .log FILES and check each CRC.

    Exits with status 1 if a file holds a corrupt or torn batch.
    """
    # not at import: --help stays fast
    from riverlog.client.records import BATCH_HEADER_BYTES, CorruptRecordError, RecordBatch

    bad = False
    for path in files:
        click.echo(f"Dumping {path}")
        data = path.read_bytes()
        position = 0
        while position < len(data):
            rest = memoryview(data)[position:]
            if len(rest) < BATCH_HEADER_BYTES:
                click.echo(f"  torn batch at position {position}: {len(rest)} bytes left", err=True)
                bad = True
                break
            length = RecordBatch(rest).size_in_bytes
            if length < BATCH_HEADER_BYTES or length > len(rest):
                click.echo(f"  torn or corrupt batch at position {position}: declared {length} bytes", err=True)
                bad = True
                break
            try:
                batch = RecordBatch(rest[:length])
                batch.validate()
            except CorruptRecordError as e:
                click.echo(f"  corrupt batch at position {position}: {e}", err=True)
                bad = True
                break
            click.echo(
                f"  baseOffset: {batch.base_offset} lastOffset: {batch.last_offset} count: {batch.records_count} "
                f"position: {position} size: {length} leaderEpoch: {batch.partition_leader_epoch} "
                f"compression: {batch.compression.name.lower()} maxTimestamp: {batch.max_timestamp} "
                f"producerId: {batch.producer_id} crcValid: true"
            )
            if print_records:
                for r in batch.records():
                    click.echo(f"    | offset: {r.offset} timestamp: {r.timestamp} key: {r.key!r} value: {r.value!r}")
            position += length
    sys.exit(1 if bad else 0)


@cluster.command("up")
@click.option("--brokers", type=click.IntRange(1, 9), default=3, show_default=True,
              help="Nodes, each a broker and a controller voter (ids 1..N).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("riverlog-cluster"),
              show_default=True, help="Node i keeps its data in DIR/node-i.")
@click.option("--base-port", type=click.IntRange(1, 65535), default=9092, show_default=True,
              help="Node i listens for clients on BASE+i-1 and for the quorum on BASE+100+i-1.")  # fmt: skip
def cluster_up(brokers: int, data_dir: Path, base_port: int) -> None:
    """Start a local cluster of N broker processes; Ctrl-C stops them all.

    Prints the bootstrap string, then every node's log lines prefixed
    [node N]. Exits 1 if a node exits on its own (the others are stopped).
    """
    from riverlog.broker import cluster_up as up

    try:
        up.check_fresh_start(up.plan(brokers, data_dir, base_port))
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    sys.exit(up.run(brokers, data_dir, base_port))


# The client commands (topic, offsets, cluster, ...) live in client/cli.py.
for _command in CLIENT_COMMANDS:
    main.add_command(_command)


if __name__ == "__main__":
    main()
