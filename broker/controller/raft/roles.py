"""The roles a quorum member can be in (KIP-595's states, with KIP-996's
pre-vote), and the configuration of the core.

Voters:

- ``UNATTACHED``: knows an epoch but no leader and has not voted in it.
  Grants a vote to an up-to-date candidate (-> VOTED); campaigns after the
  randomized election timeout (-> PROSPECTIVE).
- ``VOTED``: voted for ``voted_for`` in this epoch, durably. Grants only to
  that candidate again; campaigns after the election timeout.
- ``PROSPECTIVE``: asking for pre-votes at epoch + 1 without changing any
  durable state, so a node cut off from the quorum cannot push the epoch up
  and depose a healthy leader when it comes back. A majority -> CANDIDATE;
  a refusal from a majority or a timeout -> back where it was.
- ``CANDIDATE``: epoch bumped, voted for itself, durably; asking for votes.
  A majority -> LEADER; a timeout -> PROSPECTIVE again.
- ``LEADER``: appends a LeaderChange entry at its epoch start offset, serves
  fetches, advances the high watermark. Resigns when a majority has not
  fetched within the fetch timeout (check-quorum) or on ``resign()``.
- ``FOLLOWER``: knows the leader of its epoch and fetches from it; no word
  from it within the fetch timeout -> PROSPECTIVE.
- ``RESIGNED``: was the leader of this epoch and stepped down (or restarted
  after leading it: a leader's volatile state is gone, so it cannot lead
  that epoch again). Campaigns for the next epoch after a short backoff.

Observers (not in the voter set) are ``OBSERVER`` only: they fetch from the
leader, asking any voter who it is, and never vote or campaign.

Any message carrying a higher epoch moves a voter to that epoch: FOLLOWER
if the message names the leader, else UNATTACHED (a pre-vote request is the
exception: it changes nothing).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.Enum):
    UNATTACHED = "unattached"
    VOTED = "voted"
    PROSPECTIVE = "prospective"
    CANDIDATE = "candidate"
    LEADER = "leader"
    FOLLOWER = "follower"
    RESIGNED = "resigned"
    OBSERVER = "observer"


@dataclass(frozen=True)
class RaftConfig:
    """Times are Kafka's defaults (controller.quorum.election.timeout.ms,
    controller.quorum.fetch.timeout.ms, ...), counted in ticks of ``tick_ms``."""

    node_id: int
    voters: frozenset[int]
    tick_ms: int = 50
    election_timeout_ms: int = 1000  # randomized per election in [T, 2T)
    election_backoff_max_ms: int = 1000  # after a lost election or a resignation
    fetch_timeout_ms: int = 2000  # no word from the leader -> campaign; leader: check-quorum
    fetch_max_wait_ms: int = 500  # a fetch with nothing new waits at the leader this long
    request_timeout_ms: int = 2000  # an unanswered request of ours is abandoned and re-sent
    fetch_max_bytes: int = 1 << 20
    snapshot_chunk_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        assert self.voters, "a quorum needs at least one voter"
        assert self.tick_ms > 0
        assert self.request_timeout_ms > self.fetch_max_wait_ms, "a long-polled fetch must not time out"

    def ticks(self, ms: int) -> int:
        return max(1, -(-ms // self.tick_ms))

    @property
    def is_voter(self) -> bool:
        return self.node_id in self.voters

    @property
    def majority(self) -> int:
        return len(self.voters) // 2 + 1
