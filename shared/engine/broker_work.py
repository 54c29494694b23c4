"""What the broker must be told once the store's transaction has committed, and the interface of
whoever tells it.

Every service that changes jobs (submit, compile, pause, resume, cancel, retry, redeliver)
decides in the store and returns a ``BrokerWork``; the caller applies it through its
``Publisher`` after the commit. The store is the authority: the broker side only makes a change
take effect sooner, so a lost revoke is harmless and a lost publish is repaired by resuming or
retrying again (and a submitted job whose first steps cannot be published fails at once). A
submit and a recovery round also mark their jobs until their steps are sent (``confirm``): one
that dies before it has published is repaired by recovery (shared/engine/publication.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from shared.engine.scheduling import NextStep


@dataclass
class BrokerWork:
    publish: list[NextStep] = field(default_factory=list)  # steps to send, tokens stored
    compile: list[str] = field(default_factory=list)  # compile jobs to send, by job id
    # Jobs whose first steps a worker is to release, by job id, listing their input folder first
    # if it is a big one (shared/runs/input_listing.py).
    release: list[str] = field(default_factory=list)
    terminate: list[str] = field(default_factory=list)  # running steps to stop, by task id
    drop: list[str] = field(default_factory=list)  # queued steps to discard, by task id
    deliver_now: bool = False  # run a delivery round now instead of at beat's next tick
    affected: int = 0  # jobs the operation changed
    # Jobs marked unpublished by this operation, with the mark to clear once ``publish`` is
    # sent (shared/engine/publication.py: confirm_published).
    confirm: dict[str, datetime] = field(default_factory=dict)

    def add(self, other: BrokerWork) -> None:
        self.publish += other.publish
        self.confirm.update(other.confirm)
        self.compile += other.compile
        self.release += other.release
        self.terminate += other.terminate
        self.drop += other.drop
        self.deliver_now = self.deliver_now or other.deliver_now
        self.affected += other.affected


class Publisher(Protocol):
    """Applies broker work: the only way code outside ``workers`` reaches the broker."""

    def apply(self, work: BrokerWork) -> None:
        """Send, revoke and drop what ``work`` names. Raises if the broker cannot take a
        publish; a delivery round that cannot be asked for is left to beat."""
