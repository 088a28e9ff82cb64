"""The client side of the ``riverlog`` command line: topics, offsets, cluster, groups.

Registered on the ``riverlog`` group by broker/cli.py (`CLIENT_COMMANDS`).
``riverlog --help`` must stay fast, so this module imports only click and
the standard library; trio and the client are imported inside the commands.

Every command takes ``--bootstrap`` (or RIVERLOG_BOOTSTRAP) and ``--timeout``.
A failure is one line on stderr starting with ``error:``: exit status 2 for
a bad argument, 1 for anything the cluster answered or failed to answer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

BOOTSTRAP_ENV = "RIVERLOG_BOOTSTRAP"
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"

T = TypeVar("T")


class CommandError(click.ClickException):
    """A failure reported as one ``error: ...`` line (exit 1)."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class ArgumentError(click.UsageError):
    """A bad argument, reported as one ``error: ...`` line (exit 2) rather
    than click's usage block: the user knows the command, not the value."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class _RefusesClashes:
    """Refuses arguments contradicting each other: an option given twice,
    or two options for the same setting (--to-earliest --to-latest). click
    would keep the last one silently; Kafka's tools refuse an option given
    twice too. Repeatable options (multiple=True) are exempt."""

    def make_parser(self, ctx: click.Context) -> Any:
        parser = super().make_parser(ctx)  # type: ignore[misc]
        parse = parser.parse_args

        def parse_args(args: list[str]) -> Any:
            opts, rest, order = parse(args=args)
            if not ctx.resilient_parsing:  # shell completion parses half-typed lines
                _refuse_clashes(order)
            return opts, rest, order

        parser.parse_args = parse_args
        return parser


class StrictCommand(_RefusesClashes, click.Command):
    """A command that refuses contradicting arguments (_RefusesClashes)."""


class StrictGroup(_RefusesClashes, click.Group):
    """A group that refuses contradicting arguments, as do its commands and subgroups."""

    command_class = StrictCommand
    group_class = type  # subgroups: this class


def _refuse_clashes(order: list) -> None:
    """``order``: the options in the order given, once per occurrence."""
    seen: dict[str, click.Option] = {}
    for param in order:
        if not isinstance(param, click.Option) or param.multiple or param.count or param.name is None:
            continue
        first = seen.setdefault(param.name, param)
        if first is param and order.count(param) > 1:
            raise ArgumentError(f"{param.opts[0]} given more than once")
        if first is not param:
            raise ArgumentError(f"{first.opts[0]} and {param.opts[0]} cannot be used together")


def run_client_command(async_fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """``trio.run(async_fn, *args)`` with the client's errors as CommandError.

    Kafka errors, connection failures and timeouts are the user's world, not
    bugs: they get one line, no traceback. Anything else is a bug and keeps
    its traceback.
    """
    import trio

    from riverlog.client.errors import ClientError, ConfigError
    from riverlog.client.protocol.errors import KafkaError
    from riverlog.client.records import CorruptRecordError

    user_world = (ClientError, KafkaError, CorruptRecordError)  # a corrupt batch is the data's fault
    try:
        return trio.run(async_fn, *args)
    except ConfigError as exc:  # --bootstrap that is not HOST:PORT, ...
        raise ArgumentError(str(exc)) from None
    except user_world as exc:
        raise CommandError(str(exc)) from None
    except BaseExceptionGroup as group:
        # A nursery (the client's) wraps what its body raised: report the
        # first client error if every leaf is one.
        leaves = _leaves(group)
        if leaves and all(isinstance(e, user_world) for e in leaves):
            raise CommandError(str(leaves[0])) from None
        raise
    except KeyboardInterrupt:
        raise click.Abort() from None


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def client_options(command: Callable) -> Callable:
    """--bootstrap and --timeout, shared by every client command."""
    command = click.option(
        "--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True, metavar="SECONDS",
        help="Give up (exit 1) if the cluster has not answered within this long.",
    )(command)  # fmt: skip
    return click.option(
        "--bootstrap", envvar=BOOTSTRAP_ENV, show_envvar=True, default=DEFAULT_BOOTSTRAP, show_default=True,
        metavar="HOST:PORT[,...]", help="Brokers to start from.",
    )(command)  # fmt: skip


def client_settings(bootstrap: str, timeout: float) -> dict[str, Any]:
    """Client options for a command: every wait bounded by --timeout."""
    ms = max(int(timeout * 1000), 1)
    return {
        "bootstrap_servers": bootstrap,
        "client_id": "riverlog-cli",
        "default_api_timeout_ms": ms,
        "request_timeout_ms": ms,
        "socket_connection_setup_timeout_ms": min(ms, 10_000),
    }


def parse_pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    """``("k=v", ...)`` into a dict; anything without '=' or a key, or a key
    given twice (which value was meant?), is refused."""
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ArgumentError(f"{option} expects KEY=VALUE, got {item!r}")
        if key.strip() in out:
            raise ArgumentError(f"{option} {key.strip()} given more than once")
        out[key.strip()] = value.strip()
    return out


def _table(rows: list[tuple], header: tuple) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())


# -- topic -------------------------------------------------------------------


@click.group(cls=StrictGroup)
def topic() -> None:
    """Create, list, describe, delete topics and change their configs."""


@topic.command("create")
@click.argument("name")
@click.option("--partitions", type=click.IntRange(min=1), help="Partition count (default: the broker's).")
@click.option("--replication-factor", type=click.IntRange(min=1), help="Replicas each (default: the broker's).")
@click.option("--config", "configs", multiple=True, metavar="KEY=VALUE", help="A topic config (repeatable).")
@click.option("--if-not-exists", is_flag=True, help="Succeed quietly if the topic already exists.")
@client_options
def topic_create(name, partitions, replication_factor, configs, if_not_exists, bootstrap, timeout) -> None:
    """Create topic NAME."""
    settings = client_settings(bootstrap, timeout)
    new_configs = parse_pairs(configs, "--config")

    async def run() -> bool:
        from riverlog.client.admin import Admin, NewTopic
        from riverlog.client.protocol.errors import ErrorCode, KafkaError

        new = NewTopic(name, partitions or -1, replication_factor or -1, new_configs)
        async with Admin(**settings) as admin:
            try:
                await admin.create_topics([new], timeout_ms=settings["default_api_timeout_ms"])
            except KafkaError as exc:
                if if_not_exists and exc.code == ErrorCode.TOPIC_ALREADY_EXISTS:
                    return False
                raise
        return True

    if run_client_command(run):
        click.echo(f"Created topic {name}.")


@topic.command("list")
@click.option("--include-internal", is_flag=True, help="Also list internal topics.")
@client_options
def topic_list(include_internal, bootstrap, timeout) -> None:
    """List the topics, one per line."""
    settings = client_settings(bootstrap, timeout)

    async def run() -> list[str]:
        from riverlog.client.admin import Admin

        async with Admin(**settings) as admin:
            return await admin.list_topics(include_internal=include_internal)

    for name in run_client_command(run):
        click.echo(name)


@topic.command("describe")
@click.argument("name")
@client_options
def topic_describe(name, bootstrap, timeout) -> None:
    """Show topic NAME's partitions (leader, replicas, ISR) and the configs
    that differ from the defaults, in kafka-topics.sh's layout."""
    settings = client_settings(bootstrap, timeout)

    async def run():
        from riverlog.client.admin import Admin

        async with Admin(**settings) as admin:
            description = (await admin.describe_topics([name]))[name]
            configs = await admin.describe_configs(name)
            return description, configs

    description, configs = run_client_command(run)
    overrides = ",".join(f"{k}={e.value}" for k, e in sorted(configs.items()) if not e.is_default)
    rf = len(description.partitions[0].replicas) if description.partitions else 0
    click.echo(f"Topic: {name}\tPartitionCount: {len(description.partitions)}\tReplicationFactor: {rf}\t"
               f"Configs: {overrides}")  # fmt: skip
    for p in description.partitions:
        click.echo(f"\tTopic: {name}\tPartition: {p.partition}\tLeader: {p.leader}\t"
                   f"Replicas: {','.join(map(str, p.replicas))}\tIsr: {','.join(map(str, p.isr))}")  # fmt: skip


@topic.command("delete")
@click.argument("name")
@client_options
def topic_delete(name, bootstrap, timeout) -> None:
    """Delete topic NAME and its data."""
    settings = client_settings(bootstrap, timeout)

    async def run() -> None:
        from riverlog.client.admin import Admin

        async with Admin(**settings) as admin:
            await admin.delete_topics([name], timeout_ms=settings["default_api_timeout_ms"])

    run_client_command(run)
    click.echo(f"Deleted topic {name}.")


@topic.command("alter-config")
@click.argument("name")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a topic config (repeatable).")
@click.option("--delete", "deletes", multiple=True, metavar="KEY", help="Back to the default (repeatable).")
@client_options
def topic_alter_config(name, sets, deletes, bootstrap, timeout) -> None:
    """Set or delete configs of topic NAME; the other configs stay."""
    if not sets and not deletes:
        raise ArgumentError("give at least one --set KEY=VALUE or --delete KEY")
    settings = client_settings(bootstrap, timeout)
    changes = parse_pairs(sets, "--set")
    for key in deletes:
        if key in changes:
            raise ArgumentError(f"--set and --delete both name {key}")
        if deletes.count(key) > 1:
            raise ArgumentError(f"--delete {key} given more than once")

    async def run() -> None:
        from riverlog.client.admin import Admin

        async with Admin(**settings) as admin:
            await admin.alter_configs(name, set=changes, delete=list(deletes))

    run_client_command(run)
    click.echo(f"Updated the configs of topic {name}.")


# -- offsets -----------------------------------------------------------------


@click.command("offsets", cls=StrictCommand)
@click.argument("topic_name", metavar="TOPIC")
@client_options
def offsets(topic_name, bootstrap, timeout) -> None:
    """Show each partition's earliest and latest offset of TOPIC."""
    settings = client_settings(bootstrap, timeout)

    async def run():
        from riverlog.client.admin import Admin
        from riverlog.client.types import TopicPartition

        async with Admin(**settings) as admin:
            description = (await admin.describe_topics([topic_name]))[topic_name]
            tps = [TopicPartition(topic_name, p.partition) for p in description.partitions]
            earliest = await admin.list_offsets({tp: "earliest" for tp in tps})
            latest = await admin.list_offsets({tp: "latest" for tp in tps})
            return [(tp.partition, earliest[tp].offset, latest[tp].offset) for tp in tps]

    _table(run_client_command(run), ("PARTITION", "EARLIEST", "LATEST"))


# -- cluster -----------------------------------------------------------------


@click.group(cls=StrictGroup)
def cluster() -> None:
    """Look at the cluster."""


@cluster.command("describe")
@client_options
def cluster_describe(bootstrap, timeout) -> None:
    """Show the cluster id, the controller, the brokers and the metadata quorum."""
    settings = client_settings(bootstrap, timeout)

    async def run():
        from riverlog.client.admin import Admin

        async with Admin(**settings) as admin:
            return await admin.describe_cluster(include_fenced=True), await admin.describe_quorum()

    description, quorum = run_client_command(run)
    click.echo(f"Cluster id: {description.cluster_id}")
    click.echo(f"Controller: {description.controller_id}")
    _table([(b.node_id, b.host, b.port, b.rack or "", "fenced" if b.fenced else "active")
            for b in description.brokers], ("BROKER", "HOST", "PORT", "RACK", "STATE"))  # fmt: skip
    click.echo()
    if quorum is None:
        click.echo("Quorum: not described by this broker (no DescribeQuorum)")
        return
    click.echo(f"Quorum leader: {_or_dash(quorum['leader_id'])}\tEpoch: {quorum['leader_epoch']}"
               f"\tHigh watermark: {quorum['high_watermark']}")  # fmt: skip
    rows = [(*_replica_row(r, quorum), "voter") for r in quorum["current_voters"]]
    rows += [(*_replica_row(r, quorum), "observer") for r in quorum["observers"]]
    _table(rows, ("NODE", "LOG END OFFSET", "LAG", "LAST FETCH", "ROLE"))


def _replica_row(replica: dict, quorum: dict) -> tuple:
    """One replica's progress as the quorum leader sees it; "-" where it does not know."""
    end = replica["log_end_offset"]
    lag = max(quorum["high_watermark"] - end, 0) if end >= 0 else "-"
    fetched = replica.get("last_fetch_timestamp", -1)
    if replica["replica_id"] == quorum["leader_id"]:
        last = "leader"
    elif fetched is None or fetched < 0:
        last = "-"
    else:
        import time

        last = f"{max(int(time.time() * 1000) - fetched, 0)} ms ago"
    return replica["replica_id"], end if end >= 0 else "-", lag, last




# -- group -------------------------------------------------------------------


@click.group(cls=StrictGroup)
def group() -> None:
    """List, describe and delete consumer groups; reset their offsets."""


@group.command("list")
@client_options
def group_list(bootstrap, timeout) -> None:
    """List the groups of every broker: id, state and protocol type."""
    settings = client_settings(bootstrap, timeout)

    async def run():
        from riverlog.client.admin import Admin

        async with Admin(**settings) as admin:
            return await admin.list_groups()

    rows = [(g.group_id, g.state or "-", g.protocol_type or "-") for g in run_client_command(run)]
    _table(rows, ("GROUP", "STATE", "PROTOCOL-TYPE"))


@group.command("describe")
@click.argument("group_id", metavar="GROUP")
@client_options
def group_describe(group_id, bootstrap, timeout) -> None:
    """Show GROUP's members and, per partition, its committed offset, the
    log end offset and the lag (kafka-consumer-groups.sh --describe)."""
    settings = client_settings(bootstrap, timeout)

    async def run():
        from riverlog.client.admin import Admin
        from riverlog.client.offsets import list_offsets

        async with Admin(**settings) as admin:
            description = (await admin.describe_groups([group_id]))[group_id]
            committed = await admin.list_group_offsets(group_id)
            owner = {tp: m for m in description.members if isinstance(m.assignment, list) for tp in m.assignment}
            tps = sorted(set(committed) | set(owner))
            existing = set(await admin.list_topics(include_internal=True))  # a deleted topic's offsets stay
            ends = await list_offsets(admin.cluster, {tp: "latest" for tp in tps if tp.topic in existing})
            return description, committed, owner, tps, ends

    description, committed, owner, tps, ends = run_client_command(run)
    protocol = "/".join(p for p in (description.protocol_type, description.protocol) if p)
    click.echo(f"Group: {group_id}\tState: {description.state}\tProtocol: {protocol or '-'}\t"
               f"Members: {len(description.members)}")  # fmt: skip
    if description.members:
        click.echo()
        _table([(m.member_id, m.client_id, m.client_host, _partition_list(m.assignment))
                for m in description.members], ("MEMBER-ID", "CLIENT-ID", "HOST", "PARTITIONS"))  # fmt: skip
    if tps:
        click.echo()
        rows = []
        for tp in tps:
            offset = committed[tp].offset if committed.get(tp) is not None else None
            end = ends[tp].offset if tp in ends else None
            lag = end - offset if offset is not None and end is not None else None
            member = owner.get(tp)
            rows.append((tp.topic, tp.partition, _or_dash(offset), _or_dash(end), _or_dash(lag),
                         member.member_id if member else "-"))  # fmt: skip
        _table(rows, ("TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "MEMBER-ID"))


def _or_dash(value: Any) -> Any:
    return "-" if value is None else value


def _partition_list(assignment: Any) -> str:
    """topic:0,1 topic2:3 for a consumer's partitions; a byte count for other protocols'."""
    if isinstance(assignment, bytes):
        return f"({len(assignment)} bytes)"
    by_topic: dict[str, list[int]] = {}
    for topic_name, partition in sorted(assignment):
        by_topic.setdefault(topic_name, []).append(partition)
    return " ".join(f"{t}:{','.join(map(str, ps))}" for t, ps in by_topic.items()) or "-"


@group.command("reset-offsets")
@click.argument("group_id", metavar="GROUP")
@click.option("--topic", "topic_name", required=True, metavar="TOPIC", help="The topic whose offsets to reset.")
@click.option("--partition", type=click.IntRange(min=0), metavar="P", help="Only this partition (default: every one).")
@click.option("--to-earliest", "target", flag_value="earliest", help="To each partition's earliest offset.")
@click.option("--to-latest", "target", flag_value="latest", help="To each partition's log end offset.")
@click.option("--to-offset", type=click.IntRange(min=0), metavar="N",
              help="To offset N (kept within each partition's earliest and latest).")
@click.option("--dry-run", is_flag=True, help="Show the new offsets without committing them.")
@client_options
def group_reset_offsets(group_id, topic_name, partition, target, to_offset, dry_run, bootstrap, timeout) -> None:
    """Commit new offsets for GROUP on TOPIC. The group must be inactive
    (no members): a running consumer would overwrite them. Prints the new
    offsets."""
    if (target is not None) + (to_offset is not None) != 1:
        raise ArgumentError("give exactly one of --to-earliest, --to-latest, --to-offset N")
    settings = client_settings(bootstrap, timeout)

    async def run():
        from riverlog.client.admin import Admin
        from riverlog.client.protocol.errors import GroupIdNotFoundError, UnknownTopicOrPartitionError
        from riverlog.client.types import TopicPartition

        async with Admin(**settings) as admin:
            try:
                state = (await admin.describe_groups([group_id]))[group_id].state
            except GroupIdNotFoundError:
                state = "Dead"  # no such group yet: the commit creates it
            if state not in ("Empty", "Dead"):
                return state, None
            description = (await admin.describe_topics([topic_name]))[topic_name]
            numbers = [p.partition for p in description.partitions]
            if partition is not None and partition not in numbers:
                raise UnknownTopicOrPartitionError(f"UNKNOWN_TOPIC_OR_PARTITION: {topic_name} has no partition "
                                                   f"{partition} (it has {len(numbers)})")  # fmt: skip
            tps = [TopicPartition(topic_name, p) for p in ([partition] if partition is not None else numbers)]
            earliest = await admin.list_offsets({tp: "earliest" for tp in tps})
            latest = await admin.list_offsets({tp: "latest" for tp in tps})
            if target == "earliest":
                new = {tp: earliest[tp].offset for tp in tps}
            elif target == "latest":
                new = {tp: latest[tp].offset for tp in tps}
            else:  # as Kafka's tool: an offset out of range becomes the nearest end
                new = {tp: min(max(to_offset, earliest[tp].offset), latest[tp].offset) for tp in tps}
            if not dry_run:
                await admin.alter_group_offsets(group_id, new)
            return state, new

    state, new = run_client_command(run)
    if new is None:
        raise CommandError(f"Assignments can only be reset if the group '{group_id}' is inactive, "
                           f"but the current state is {state}.")  # fmt: skip
    _table([(group_id, tp.topic, tp.partition, offset) for tp, offset in new.items()],
           ("GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"))
    if dry_run:
        click.echo("(dry run: nothing committed)", err=True)


@group.command("delete")
@click.argument("group_id", metavar="GROUP")
@client_options
def group_delete(group_id, bootstrap, timeout) -> None:
    """Delete GROUP and its committed offsets; it must have no members."""
    settings = client_settings(bootstrap, timeout)

    async def run() -> None:
        from riverlog.client.admin import Admin

        async with Admin(**settings) as admin:
            await admin.delete_groups([group_id])

    run_client_command(run)
    click.echo(f"Deleted group {group_id}.")


# -- produce / consume -------------------------------------------------------
# The bulk paths: produce streams stdin into a Producer without waiting for
# each record's answer; consume prints what a Consumer polls as raw bytes.
# Both are binary safe: lines and values are bytes, never decoded.

_READ_CHUNK_BYTES = 1 << 20
_PROGRESS_INTERVAL_S = 0.25  # the live progress line: at most 4 updates a second
_PROGRESS_AFTER_S = 1.0  # ... and only once the input has taken this long
_COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")


class _ProduceStats:
    """Counts for the summary; `delivered` is the producer's on_delivery callback."""

    def __init__(self) -> None:
        self.sent = self.payload_bytes = self.acked = self.failed = 0
        self.first_error: BaseException | None = None
        self.bad_line = 0  # the number of a line without the key separator
        self.interrupted = False

    def delivered(self, metadata: Any, error: BaseException | None) -> None:
        if error is None:
            self.acked += 1
        else:
            self.failed += 1
            if self.first_error is None:
                self.first_error = error

    def line(self, elapsed_s: float) -> str:
        elapsed_s = max(elapsed_s, 1e-6)
        mb_per_s = self.payload_bytes / elapsed_s / (1024 * 1024)  # MB as kafka-producer-perf-test's
        failed = f", {self.failed} failed" if self.failed else ""
        return (f"{_count(self.sent, 'record')} ({self.payload_bytes} bytes) in {elapsed_s:.2f} s: "
                f"{self.sent / elapsed_s:.0f} records/s, {mb_per_s:.2f} MB/s{failed}")  # fmt: skip


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _has_fileno(stream: Any) -> bool:
    try:
        stream.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return False
    return True


class _LineTooLong:
    """Stands for a line longer than any record may be: it is not kept."""


async def _read_lines(stream: Any, max_line: int):
    """The stream's lines, without their trailing \\n, a list per chunk read.
    Reads happen in a thread so the producer's sender keeps running while
    a slow pipe or a terminal makes us wait. A line over `max_line` bytes
    (binary input without newlines, say) is dropped as it is read and given
    as a `_LineTooLong`: memory stays bounded whatever the input."""
    import trio

    read = getattr(stream, "read1", stream.read)  # read1: what is there now, up to the chunk size
    if stream is sys.stdin.buffer and _has_fileno(stream):
        # os.read, not the buffered reader: a read left blocked in its thread
        # at exit (Ctrl-C) must not hold the reader's lock, which makes the
        # interpreter abort at shutdown.
        fd = stream.fileno()

        def read(n: int) -> bytes:
            return os.read(fd, n)

    rest = b""
    skipping = False  # inside a line already over max_line: drop up to its newline
    while True:
        chunk = await trio.to_thread.run_sync(read, _READ_CHUNK_BYTES, abandon_on_cancel=True)
        if not chunk:
            if rest or skipping:
                yield [_LineTooLong() if skipping else rest]  # a last line without a newline is a record too
            return
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        if skipping and lines:
            lines[0] = _LineTooLong()
            skipping = False
        elif skipping:
            rest = b""
        if len(rest) > max_line:
            rest, skipping = b"", True
        lines = [_LineTooLong() if isinstance(x, bytes) and len(x) > max_line else x for x in lines]
        if lines:
            yield lines


async def _show_progress(stats: _ProduceStats, started: float, stderr: Any) -> None:
    import time

    import trio

    await trio.sleep(_PROGRESS_AFTER_S)
    while True:
        stderr.write(f"\r{stats.acked} acknowledged, {stats.line(time.monotonic() - started)}\x1b[K")
        stderr.flush()
        await trio.sleep(_PROGRESS_INTERVAL_S)


async def _on_interrupt(signals: Any, scopes: list[Any], stats: Any = None) -> None:
    """Each Ctrl-C (SIGINT) cancels the next scope: the first stops the work
    in hand cleanly, a second one gives up on finishing it."""
    async for _ in signals:
        if stats is not None:
            stats.interrupted = True
        scopes.pop(0).cancel()
        if not scopes:
            return


@click.command("produce", cls=StrictCommand)
@click.argument("topic_name", metavar="TOPIC")
@click.option("--file", "source", type=click.File("rb"), metavar="PATH", help="Read this file instead of stdin.")
@click.option("--key-separator", metavar="SEP",
              help="Each line is KEY<SEP>VALUE, split at the first SEP. A line without SEP stops the command "
                   "with exit status 1, as Kafka's console producer does; the lines before it are sent.")
@click.option("--header", "headers", multiple=True, metavar="KEY=VALUE", help="A header on every record (repeatable).")
@click.option("--acks", type=click.Choice(["0", "1", "all"]), default="all", show_default=True,
              help="Replicas that must have a record before it counts as sent (idempotence needs all).")
@click.option("--compression", type=click.Choice(_COMPRESSIONS), default="none", show_default=True,
              help="Compression of the record batches.")
@click.option("--partition", type=click.IntRange(min=0), help="Send every record to this partition "
              "(default: by the key's hash; records without a key fill one partition's batch, then the next).")
@client_options
def produce(topic_name, source, key_separator, headers, acks, compression, partition, bootstrap, timeout) -> None:
    """Send the lines of stdin (or --file) to TOPIC, one record per line.

    A record's value is its line without the trailing newline, as bytes:
    any encoding or binary data is kept (a \\r before the newline stays).
    An empty line is a record with an empty value. The command waits until
    every record is acknowledged, then prints a summary on stderr (and a
    progress line while it runs, if stderr is a terminal). Exit status 1 if
    any record failed, with the first failure's error.

    End the input with Ctrl-D. Ctrl-C stops reading, still delivers the
    lines read so far, and exits with status 130; a second Ctrl-C gives up
    on them.
    """
    import os
    import sys
    import time

    if key_separator == "":
        raise ArgumentError("--key-separator must not be empty")
    separator = os.fsencode(key_separator) if key_separator is not None else None
    # One header per --header, in order (Kafka allows a key twice).
    record_headers = [(k, os.fsencode(v)) for item in headers for k, v in parse_pairs((item,), "--header").items()]
    settings = _produce_settings(client_settings(bootstrap, timeout), acks, compression)
    stream = source if source is not None else sys.stdin.buffer  # bytes: lines are never decoded
    stderr = sys.stderr
    stats = _ProduceStats()
    started = time.monotonic()

    async def run() -> None:
        import signal

        import trio

        from riverlog.client.producer import Producer

        with trio.open_signal_receiver(signal.SIGINT) as signals:
            async with Producer(**settings) as producer:
                with trio.CancelScope() as delivering:
                    scopes = [trio.CancelScope(), delivering]
                    with scopes[0]:
                        producer.nursery.start_soon(_on_interrupt, signals, scopes, stats)
                        if stderr.isatty():
                            producer.nursery.start_soon(_show_progress, stats, started, stderr)
                        await _send_lines(producer, stream, topic_name, separator, record_headers, partition,
                                          stats)  # fmt: skip
                    if len(scopes) == 2:  # input ended: a Ctrl-C now gives up on the delivering
                        scopes.pop(0)
                    await producer.flush()
                if delivering.cancelled_caught:
                    await producer.close(timeout=0)

    run_client_command(run)
    elapsed_s = time.monotonic() - started
    if stderr.isatty() and elapsed_s >= _PROGRESS_AFTER_S:
        stderr.write("\r\x1b[K")  # clear the progress line
    click.echo(f"Produced {stats.line(elapsed_s)}.", err=True)
    if stats.bad_line:
        raise CommandError(f"line {stats.bad_line} has no key separator {key_separator!r}")
    if stats.failed:
        raise CommandError(f"{stats.failed} of {_count(stats.sent, 'record')} failed; the first: {stats.first_error}")
    if stats.interrupted:
        raise click.exceptions.Exit(130)


def _produce_settings(settings: dict[str, Any], acks: str, compression: str) -> dict[str, Any]:
    """The producer's settings for `produce`: bulk sending, every wait bounded by --timeout."""
    ms = settings["default_api_timeout_ms"]
    settings.update(
        acks=acks, compression_type=compression, enable_idempotence=acks == "all",
        max_block_ms=ms + 500,  # metadata (an unknown topic) or buffer room; past "no broker reachable" at ms
        delivery_timeout_ms=ms + 100,  # unanswered for --timeout: the record failed
        linger_ms=10, batch_size=256 * 1024,  # bulk: fewer, larger requests
    )  # fmt: skip
    return settings


async def _send_lines(producer: Any, stream: Any, topic_name: str, separator: bytes | None,
                      record_headers: list[tuple[str, bytes]], partition: int | None,
                      stats: _ProduceStats) -> None:  # fmt: skip
    """`produce`'s loop: each line of `stream` a record; stops at a line without the key separator."""
    from riverlog.client.protocol.errors import MessageTooLargeError

    send, on_delivery, hdrs = producer.send, stats.delivered, record_headers or None
    sep_len = len(separator) if separator is not None else 0
    line_number = 0
    limit = producer.config.max_request_size
    async for lines in _read_lines(stream, limit):
        for line in lines:
            line_number += 1
            if isinstance(line, _LineTooLong):
                on_delivery(None, MessageTooLargeError(f"line {line_number} is over max_request_size ({limit})"))
                stats.sent += 1
                continue
            key = None
            if separator is not None:
                key, found, value = line.partition(separator)
                if not found:
                    stats.bad_line = line_number
                    return
            else:
                value = line
            try:
                await send(topic_name, value, key, hdrs, partition, None, on_delivery)
            except MessageTooLargeError as exc:  # this line only: the others still go
                on_delivery(None, exc)
            stats.sent += 1
            stats.payload_bytes += len(line) - sep_len


# kcat's -f directives (a subset); each renders one field of a record as bytes.
_FORMAT_FIELDS: dict[str, Callable[[Any], bytes]] = {
    "t": lambda r: r.topic.encode(),
    "p": lambda r: b"%d" % r.partition,
    "o": lambda r: b"%d" % r.offset,
    "T": lambda r: b"%d" % r.timestamp,
    "k": lambda r: r.key or b"",
    "s": lambda r: r.value or b"",
    "K": lambda r: b"%d" % (-1 if r.key is None else len(r.key)),
    "S": lambda r: b"%d" % (-1 if r.value is None else len(r.value)),
    "h": lambda r: b",".join(k.encode() + b"=" + (v or b"") for k, v in r.headers),
    "%": lambda r: b"%",
}
_FORMAT_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "0": b"\0", "\\": b"\\"}


def compile_format(fmt: str) -> Callable[[Any], bytes]:
    """kcat's ``-f``: a function from a ConsumerRecord to its bytes."""
    import os

    parts: list[bytes | Callable[[Any], bytes]] = []
    literal = bytearray()
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c in "%\\":
            if i + 1 == len(fmt):
                raise ArgumentError(f"--format ends in a lone {c!r}")
            d = fmt[i + 1]
            if c == "\\" and d in _FORMAT_ESCAPES:
                literal += _FORMAT_ESCAPES[d]
            elif c == "%" and d == "%":
                literal += b"%"
            elif c == "%" and d in _FORMAT_FIELDS:
                if literal:
                    parts.append(bytes(literal))
                    literal.clear()
                parts.append(_FORMAT_FIELDS[d])
            else:
                raise ArgumentError(f"--format has an unknown {'directive' if c == '%' else 'escape'} {c + d!r}")
            i += 2
        else:
            literal += os.fsencode(c)
            i += 1
    if literal:
        parts.append(bytes(literal))
    fields = [(p, None) if callable(p) else (None, p) for p in parts]
    return lambda r: b"".join(f(r) if f is not None else lit for f, lit in fields)  # type: ignore[misc]


def parse_offset(spec: str) -> tuple[str, int]:
    """--offset: ("beginning"|"end", 0), ("offset", N), ("from_end", N) for
    -N, ("timestamp", ms) for s@MS."""
    spec = spec.strip()
    if spec in ("beginning", "end"):
        return spec, 0
    try:
        if spec.startswith("s@"):
            ms = int(spec[2:])
            if ms >= 0:
                return "timestamp", ms
        else:
            n = int(spec)
            return ("offset", n) if n >= 0 else ("from_end", -n)
    except ValueError:
        pass
    raise ArgumentError(f"--offset expects beginning, end, an offset N, -N or s@MS, got {spec!r}")


@click.command("consume", cls=StrictCommand)
@click.argument("topic_name", metavar="TOPIC")
@click.option("--group", "group_id", metavar="GROUP",
              help="Read as a member of consumer group GROUP, from its committed offsets, committing as it "
                   "goes; see below.")
@click.option("--partition", type=click.IntRange(min=0),
              help="Read only this partition (default: every one). Not with --group.")
@click.option("--offset", "offset_spec", default="beginning", show_default=True, metavar="WHERE",
              help="Where each partition starts: beginning, end (wait for new records), an offset N, "
                   "-N (N records before the end) or s@MS (the first record at or after a timestamp in ms). "
                   "With --group: beginning or end, for partitions the group has committed no offset for.")
@click.option("--max-messages", type=click.IntRange(min=1), metavar="N", help="Exit after N records.")
@click.option("-e", "--exit-at-end", is_flag=True,
              help="Exit once every partition is read up to where it ended when the command started "
                   "(with --group: when it was assigned to this member).")
@click.option("--idle-timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Exit when no record has come for this long.")
@click.option("-f", "--format", "fmt", metavar="FMT",
              help="Print each record as FMT (kcat's -f) instead of its value and a newline; see above.")
@client_options
def consume(topic_name, group_id, partition, offset_spec, max_messages, exit_at_end, idle_timeout, fmt,
            bootstrap, timeout):  # fmt: skip
    """Print TOPIC's records on stdout: by default each value and a newline,
    from the beginning of every partition, waiting for more until Ctrl-C
    or SIGTERM (exit status 0).

    Values are written as they are, binary or not. A null key or value
    prints as nothing (its size as -1). --format FMT takes kcat's
    directives:

    \b
      %t topic      %p partition   %o offset     %T timestamp (ms)
      %k key        %K key size    %s value      %S value size
      %h headers as k=v,k=v        %% a percent sign
      \\n \\t \\r \\0 \\\\ escapes

    e.g. --format '%p:%o %k=%s\\n'.

    An offset past a partition's end is an error (exit status 1). Without
    --group, no position is stored: each run starts where --offset says.

    With --group GROUP the command joins consumer group GROUP subscribed to
    TOPIC: the group splits TOPIC's partitions among the members running
    with that GROUP, and each partition starts at the group's committed
    offset, or, if it has none, at the beginning (the default) or the end
    (--offset end). After each batch is written and flushed its offsets are
    committed, so a record is committed only once printed; one printed just
    before a crash is printed again by the next run (at least once). On exit
    (Ctrl-C, SIGTERM, --max-messages, --exit-at-end, --idle-timeout) the
    command commits and leaves the group, so the others take its partitions
    at once. A second Ctrl-C skips that last commit. A rebalance that gave
    partitions away before their commit is a warning on stderr: their new
    owner prints those records again.
    """
    import sys

    start, start_arg = parse_offset(offset_spec)
    render = compile_format(fmt) if fmt is not None else None
    settings = _consume_settings(client_settings(bootstrap, timeout), group_id, partition, start, offset_spec)
    out = sys.stdout.buffer  # values are written as they are
    command = _Consume(topic_name, group_id, partition, start, start_arg, exit_at_end,
                       _Stops(max_messages, idle_timeout), _Printer(out, render), settings)  # fmt: skip
    try:
        run_client_command(command.run)
    except BrokenPipeError:
        # The reader went away (`riverlog consume t | head`): that ends the
        # command, quietly; stdout must not be flushed again at exit.
        import os

        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        except (OSError, ValueError, AttributeError):
            pass


def _consume_settings(settings: dict[str, Any], group_id: str | None, partition: int | None, start: str,
                      offset_spec: str) -> dict[str, Any]:  # fmt: skip
    """The consumer's settings for `consume`; --group's argument checks."""
    # Fetches wait up to fetch_max_wait_ms at the broker: longer than --timeout is not a failure.
    settings["request_timeout_ms"] += 500
    settings["auto_offset_reset"] = {"beginning": "earliest", "offset": "none"}.get(start, "latest")
    if start in ("from_end", "timestamp"):
        settings["auto_offset_reset"] = "earliest"  # an offset we looked up that retention removed since
    if group_id is not None:
        if partition is not None:
            raise ArgumentError("--partition cannot be used with --group: the group assigns the partitions")
        if start not in ("beginning", "end"):
            raise ArgumentError(f"--offset with --group must be beginning or end, got {offset_spec!r}")
        # Commits are ours, after printing. A 1 s heartbeat: the other members
        # learn of a rebalance (one of us starting or leaving) within a second.
        settings.update(group_id=group_id, enable_auto_commit=False, session_timeout_ms=10_000,
                        heartbeat_interval_ms=1_000)  # fmt: skip
    return settings


class _Printer:
    """`consume`'s output: each record's value and a newline, or --format's rendering."""

    def __init__(self, out: Any, render: Callable[[Any], bytes] | None) -> None:
        self.out = out
        self.render = render

    def __call__(self, records: list) -> None:
        render, out = self.render, self.out
        if render is None:
            out.write(b"\n".join([r.value or b"" for r in records]) + b"\n")
        else:
            out.write(b"".join([render(r) for r in records]))
        out.flush()


class _Stops:
    """--max-messages and --idle-timeout: how long a poll may wait and how
    many records it may take, and whether reading is over."""

    def __init__(self, max_messages: int | None, idle_timeout: float | None) -> None:
        self.max_messages = max_messages
        self.idle_timeout = idle_timeout
        self.count = 0
        self.idle_since = 0.0

    def begin(self, now: float) -> None:
        self.count = 0
        self.idle_since = now

    def poll_args(self, wait: float, now: float) -> tuple[float, int | None]:
        """The poll's timeout (at most `wait`) and max_records."""
        if self.idle_timeout is not None:
            wait = min(wait, max(self.idle_since + self.idle_timeout - now, 0))
        return wait, None if self.max_messages is None else self.max_messages - self.count

    def took(self, n: int, now: float) -> None:
        self.idle_since = now
        self.count += n

    @property
    def enough(self) -> bool:
        return self.max_messages is not None and self.count >= self.max_messages

    def idle(self, now: float) -> bool:
        return self.idle_timeout is not None and now - self.idle_since >= self.idle_timeout


class _Consume:
    """One `consume` run: the partitions assigned and positioned by --partition
    and --offset (`read`), or as a member of --group (`read_group`), each
    polled batch printed until a stop condition (`_Stops`, --exit-at-end)."""

    def __init__(self, topic_name: str, group_id: str | None, partition: int | None, start: str, start_arg: int,
                 exit_at_end: bool, stops: _Stops, write: _Printer, settings: dict[str, Any]) -> None:  # fmt: skip
        self.topic_name = topic_name
        self.group_id = group_id
        self.partition = partition
        self.start, self.start_arg = start, start_arg
        self.exit_at_end = exit_at_end
        self.stops = stops
        self.write = write
        self.settings = settings
        self.assigned = False  # --group: the group's assignment is in effect (not between a revoke and the next assign)
        self.reading = False  # --group: a revoke commits only while reading; at exit the last commit is ours

    async def run(self) -> None:
        import signal

        import trio

        from riverlog.client.consumer import Consumer

        group_id = self.group_id
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with Consumer(**self.settings) as consumer:
                with trio.CancelScope() as finishing:
                    with trio.CancelScope() as scope:
                        # A first Ctrl-C stops reading; with a group a second one skips the last commit.
                        scopes = [scope, finishing] if group_id is not None else [scope]
                        consumer.nursery.start_soon(_on_interrupt, signals, scopes)
                        if group_id is None:
                            await self.read(consumer, await self.assign(consumer))
                        else:
                            self.reading = True
                            try:
                                await self.read_group(consumer)
                            finally:  # an error (a broken pipe): what poll gave may not be printed
                                self.reading = False
                    if group_id is not None:
                        await self.commit(consumer)

    async def assign(self, consumer) -> dict | None:
        """Assign and position the partitions; their ends if --exit-at-end."""
        from riverlog.client.offsets import list_offsets
        from riverlog.client.protocol.errors import OffsetOutOfRangeError, UnknownTopicOrPartitionError
        from riverlog.client.types import TopicPartition

        topic_name, partition, start, start_arg = self.topic_name, self.partition, self.start, self.start_arg
        info = await consumer.cluster.topic(topic_name)
        if partition is not None and partition not in info.partitions:
            raise UnknownTopicOrPartitionError(
                f"UNKNOWN_TOPIC_OR_PARTITION: {topic_name} has no partition {partition} "
                f"(it has {len(info.partitions)})"
            )  # fmt: skip
        numbers = [partition] if partition is not None else sorted(info.partitions)
        tps = [TopicPartition(topic_name, p) for p in numbers]
        consumer.assign(tps)
        if start == "beginning":
            await consumer.seek_to_beginning(*tps)
        elif start == "end":
            await consumer.seek_to_end(*tps)
        elif start == "offset":
            for tp in tps:
                consumer.seek(tp, start_arg)
        else:
            if start == "from_end":
                earliest = await list_offsets(consumer.cluster, {tp: "earliest" for tp in tps})
                latest = await list_offsets(consumer.cluster, {tp: "latest" for tp in tps})
                found = {tp: max(earliest[tp].offset, latest[tp].offset - start_arg) for tp in tps}
            else:  # a timestamp: no record at or after it (-1) means the end
                by_time = await list_offsets(consumer.cluster, {tp: start_arg for tp in tps})
                latest = await list_offsets(consumer.cluster, {tp: "latest" for tp in tps})
                found = {tp: by_time[tp].offset if by_time[tp].offset >= 0 else latest[tp].offset for tp in tps}
            for tp, offset in found.items():
                consumer.seek(tp, offset)
        if not self.exit_at_end:
            return None
        ends = await list_offsets(consumer.cluster, {tp: "latest" for tp in tps})
        if start == "offset":  # past the end: an error, as without -e (which learns it from Fetch)
            for tp in tps:
                if start_arg > ends[tp].offset:
                    raise OffsetOutOfRangeError(f"offset {start_arg} is out of range for {tp.topic}-{tp.partition}")
        return {tp: ends[tp].offset for tp in tps}

    async def read(self, consumer, ends: dict | None) -> None:
        import trio

        stops = self.stops
        pending = set(ends or ())  # partitions not read to their end yet
        stops.begin(trio.current_time())
        while True:
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:  # type: ignore[index]
                    pending.discard(tp)
                    consumer.pause(tp)
            if ends is not None and not pending:
                return
            wait = 0.5 if ends is not None else float("inf")  # -e: look at positions now and then
            wait, limit = stops.poll_args(wait, trio.current_time())
            records = await consumer.poll(wait, max_records=limit)
            if ends is not None:
                records = [r for r in records if r.offset < ends[(r.topic, r.partition)]]
            if records:
                stops.took(len(records), trio.current_time())
                self.write(records)
                if stops.enough:
                    return
            elif stops.idle(trio.current_time()):
                return

    async def read_group(self, consumer) -> None:
        """`read` as a member of the group: the group assigns partitions and
        says where they start; each printed batch is committed. A partition's
        end for -e is its log end offset when first seen assigned to us."""
        import trio

        def on_assigned(tps) -> None:
            self.assigned = True

        async def on_revoked(tps) -> None:
            self.assigned = False
            if self.reading:  # a position a reset moved without printing: the next owner starts there too
                await self.commit(consumer)

        def on_lost(tps) -> None:  # someone else's already: nothing to commit
            self.assigned = False

        await consumer.cluster.topic(self.topic_name)  # an unknown topic: the same error as without --group
        ends: dict = {}
        consumer.subscribe([self.topic_name], on_assigned=on_assigned, on_revoked=on_revoked, on_lost=on_lost)
        stops, exit_at_end = self.stops, self.exit_at_end
        stops.begin(trio.current_time())
        while True:
            if exit_at_end and self.assigned and await self.read_to_ends(consumer, ends):
                return
            wait = 0.5 if exit_at_end else float("inf")
            wait, limit = stops.poll_args(wait, trio.current_time())
            records = await consumer.poll(wait, max_records=limit)
            if exit_at_end:
                records = self.keep_before_ends(consumer, records, ends)
            if records:
                stops.took(len(records), trio.current_time())
                self.write(records)
                await self.commit(consumer)  # the positions: just past what was printed
                if stops.enough:
                    return
            elif stops.idle(trio.current_time()):
                return

    @staticmethod
    async def read_to_ends(consumer, ends: dict) -> bool:
        """-e with a group: pause each assigned partition read up to its end;
        True once every one is (none assigned: at once)."""
        from riverlog.client.offsets import list_offsets

        assignment = consumer.assignment()
        new = [tp for tp in assignment if tp not in ends]
        if new:
            found = await list_offsets(consumer.cluster, {tp: "latest" for tp in new})
            ends.update({tp: found[tp].offset for tp in new})
        for tp in assignment - consumer.paused():
            if await consumer.position(tp) >= ends[tp]:
                consumer.pause(tp)
        return consumer.paused() >= assignment

    @staticmethod
    def keep_before_ends(consumer, records: list, ends: dict) -> list:
        """The records before their partition's end; a partition with records
        past it goes back to the first of them, so its position (what is
        committed) stays just past what was printed."""
        from riverlog.client.types import TopicPartition

        kept, back = [], {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            if tp not in ends or r.offset < ends[tp]:  # no end yet: assigned in this very poll
                kept.append(r)
            else:
                back.setdefault(tp, r.offset)
        for tp, offset in back.items():
            consumer.seek(tp, offset)
        return kept

    @staticmethod
    async def commit(consumer) -> None:
        """Commit every assigned partition's position. Losing partitions to a
        rebalance first is a warning: their new owner reads them again."""
        from riverlog.client.consumer import CommitFailedError
        from riverlog.client.protocol.errors import ErrorCode, KafkaError

        try:
            await consumer.commit()
        except (CommitFailedError, KafkaError) as exc:
            if isinstance(exc, KafkaError) and exc.code != ErrorCode.REBALANCE_IN_PROGRESS:
                raise
            click.echo(f"warning: {exc}", err=True)


# What broker/cli.py adds to the ``riverlog`` group.
CLIENT_COMMANDS: list[click.Command] = [topic, offsets, cluster, group, produce, consume]