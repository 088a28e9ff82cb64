"""The ``riverlog`` command line.

Later issues add ``broker start``, topics, produce and consume; this one has
the storage tools, starting with ``dump-log`` (Kafka's kafka-dump-log.sh).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from client.records import CorruptRecordError, RecordBatch


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="riverlog")
def main() -> None:
    """riverlog: a partitioned, replicated log broker that speaks the Kafka protocol."""


@main.command("dump-log")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--print-records", is_flag=True, help="Print every record's offset, timestamp, key and value.")
def dump_log(files: tuple[Path, ...], print_records: bool) -> None:
    """Print the record batches of segment .log FILES and check each CRC.

    Exits with status 1 if a file holds a corrupt or torn batch.
    """
    bad = False
    for path in files:
        click.echo(f"Dumping {path}")
        data = path.read_bytes()
        position = 0
        while position < len(data):
            rest = memoryview(data)[position:]
            if len(rest) < 61:
                click.echo(f"  torn batch at position {position}: {len(rest)} bytes left", err=True)
                bad = True
                break
            length = int.from_bytes(rest[8:12], "big", signed=True) + 12
            if length < 61 or length > len(rest):
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


if __name__ == "__main__":
    main()
