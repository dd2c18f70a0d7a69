"""What a finished call is: the tracker's output and the journal's row."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

# Extensions are short (FreePBX's are 2-5 digits, the tracker's default
# pattern); a transfer target longer than that, or written with '+', is a
# phone number outside the office (a manager forwarding a client to a mobile).
MAX_EXTENSION_DIGITS = 5


def is_outside_number(target: str) -> bool:
    """Whether a transfer target is a phone number rather than a colleague's extension."""
    digits = target.removeprefix("+")
    return digits.isdigit() and (len(digits) > MAX_EXTENSION_DIGITS or target.startswith("+"))


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class CallStatus(StrEnum):
    ANSWERED = "answered"
    # The caller hung up before anyone answered.
    ABANDONED = "abandoned"
    # Unanswered and ended by the PBX (queue timed out, nobody free).
    MISSED = "missed"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"


class FailureReason(StrEnum):
    """Why an outbound call did not become a conversation (the status says what, this says who)."""

    # Click-to-call: the manager's own handset rang first and nobody picked it up.
    MANAGER_NO_ANSWER = "manager_no_answer"
    # Click-to-call: the manager's handset refused the call (busy, declined, unreachable).
    MANAGER_REJECTED = "manager_rejected"
    CLIENT_BUSY = "client_busy"
    CLIENT_NO_ANSWER = "client_no_answer"
    # The PBX could not place the call at all (no route, trunk down, bad channel).
    NOT_PLACED = "not_placed"


class ClosedBy(StrEnum):
    """How the tracker learned that a call was over."""

    # Every channel of the linkedid hung up and Asterisk said so.
    HANGUP = "hangup"
    # Asterisk no longer knew the call when asked after a restart or reconnect.
    RECONCILE = "reconcile"
    # More calls were open at once than the tracker keeps; the quietest was
    # closed with what was known of it rather than dropped.
    EVICTED = "evicted"


@dataclass(frozen=True, slots=True)
class FinishedCall:
    """One call (one Asterisk linkedid on one PBX) once its last channel is gone.

    Times are Unix seconds taken from the events (Asterisk's ``Timestamp``
    header where present), never from a local clock.
    """

    pbx: str
    linkedid: str
    direction: Direction
    status: CallStatus
    started_at: float
    ended_at: float
    answered_at: float | None = None
    # The client's number exactly as the PBX showed it; normalising it is the
    # clients domain's business.  None for internal calls.
    client_number: str | None = None
    # What the manager dialled, when the call is outbound (may be 8..., +7...).
    dialed: str | None = None
    did: str | None = None
    # Extension that answered an inbound call or placed an outbound/internal one.
    manager: str | None = None
    # Who had the client last, after transfers.
    final_manager: str | None = None
    # For internal calls: the extension that was called.
    callee: str | None = None
    rang: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    transferred_to: tuple[str, ...] = ()
    # MixMonitor files as Asterisk named them (absolute paths on the PBX), in order.
    recording_files: tuple[str, ...] = ()
    # Whether the call was placed by an AMI Originate (click-to-call).
    originated: bool = False
    closed_by: ClosedBy = ClosedBy.HANGUP
    # Names of queues' members as the PBX announced them (extension -> name).
    member_names: dict[str, str] = field(default_factory=dict)
    # An outbound call that did not become a conversation: whose side it stopped on.
    failure_reason: FailureReason | None = None
    # The caller reached voicemail; ``voicemail_file`` is the message Asterisk
    # wrote (``VM_MESSAGEFILE``, without extension) when one was left.
    voicemail: bool = False
    voicemail_file: str | None = None

    @property
    def wait_s(self) -> float:
        """Start to answer, or start to end when nobody answered."""
        until = self.answered_at if self.answered_at is not None else self.ended_at
        return max(0.0, until - self.started_at)

    @property
    def talk_s(self) -> float:
        if self.answered_at is None:
            return 0.0
        return max(0.0, self.ended_at - self.answered_at)
