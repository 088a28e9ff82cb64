"""The classic consumer group coordinator as a pure state machine.

`GroupCoordinator` takes decoded request bodies, the API version and the
current time, and returns an `Outcome`: records to append to
``__consumer_offsets`` and the responses to send once they are durable. It
does no I/O and reads no clock; the Trio driver around it calls `tick()` at
`next_deadline_ms()`.
"""

from .config import GroupConfig
from .coordinator import GroupCoordinator
from .outcome import Outcome
from .state import GroupState

__all__ = ["GroupConfig", "GroupCoordinator", "GroupState", "Outcome"]
