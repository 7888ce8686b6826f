"""What a worker tracks per session (`Runner`): its pace clock and its frame flow control.

The worker's loop (app/sessions/worker.py) schedules runners; its op handlers
(app/sessions/worker_ops.py) add and drop them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.instruments.checkpoints import attach
from app.sessions.checkpointing import CheckpointState, TimetravelDrain
from app.sessions.session import TrainingSession

# A paced session that fell behind (a slow or loaded machine) catches up at most this many
# seconds of epochs at once, instead of bursting through an unbounded debt.
CATCH_UP = 0.25
# A wake-up also trains the paced epochs (and sends the frames) due within this many seconds:
# 100 paced sessions would otherwise wake the loop for nearly every single epoch.
EARLY = 0.004
MAX_IN_FLIGHT = 1  # frames sent to the web process and not yet taken by a client, per session


@dataclass
class Runner:
    """A session plus what the worker tracks for streaming it."""

    session: TrainingSession
    subscribers: int = 0
    sent_epoch: int = 0  # the last epoch whose row went out in a broadcast frame
    sent_history_id: int = 0
    next_frame_at: float = 0.0
    dirty: bool = True
    waiting_replies: list[int] = field(default_factory=list)  # REST steps that reply when done
    lockstep: list[np.ndarray[Any, Any]] = field(default_factory=list)
    lockstep_first: int = 1
    lockstep_history: int = 0
    # The pace clock (config.speed): the speed it runs at and when the next epoch is due.
    pace_speed: float | None = None
    next_epoch_at: float = 0.0
    in_flight: int = 0  # frames the web process has not reported taken (flow control)
    # Sessions that last (checkpointing.py): what is stored, and time travel's new checkpoints.
    checkpoint: CheckpointState = field(default_factory=CheckpointState)
    timetravel: TimetravelDrain | None = None

    def __post_init__(self) -> None:
        # Time travel (issue 10): a live session records its past states (checkpoints.py);
        # each database checkpoint carries the ones added and dropped since the last.
        store = attach(self.session)
        if self.timetravel is None:
            self.timetravel = store.changes

    def restart_pace(self, now: float) -> None:
        """Start the pace clock again (play, step, a new speed): the next epoch is due now."""
        self.pace_speed, self.next_epoch_at = self.session.config.speed, now

    @property
    def paced(self) -> bool:
        """Whether this session trains at a pace (config.speed set) rather than flat out."""
        return self.session.config.speed is not None

    def due(self, now: float) -> bool:
        """Whether the session may train an epoch now (always, when it is not paced)."""
        return self.session.config.speed is None or now + EARLY >= self.next_epoch_at

    @property
    def may_emit(self) -> bool:
        """Someone watches and the previous frame was taken (flow control)."""
        return self.subscribers > 0 and self.in_flight < MAX_IN_FLIGHT

    def paced_epoch_done(self, now: float) -> None:
        """Book one paced epoch: the next one is due 1/speed later, with a bounded debt."""
        speed = self.session.config.speed
        assert speed is not None
        self.next_epoch_at = max(self.next_epoch_at + 1.0 / speed, now - CATCH_UP)
