"""What one coordinator call hands back to its driver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .records_model import Record


@dataclass
class Outcome:
    """Records to append, then responses to send.

    The driver appends `records` to the group's ``__consumer_offsets``
    partition and sends `responses` only once the append is durable (etcd's
    Ready rule: persist before you send). Each response is ``(handle, body)``
    where `handle` is the opaque object the driver passed with the request;
    a response may answer an earlier request (a delayed JoinGroup or
    SyncGroup). Every handle is answered exactly once, over one or more calls.
    """

    records: list[Record] = field(default_factory=list)
    responses: list[tuple[Any, dict]] = field(default_factory=list)

    def respond(self, handle: Any, body: dict) -> None:
        self.responses.append((handle, body))

    def extend(self, other: Outcome) -> None:
        self.records.extend(other.records)
        self.responses.extend(other.responses)
