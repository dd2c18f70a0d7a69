"""Who ended a call, who took it, what became of it: the tracker's second look at call truth.

Captured scenarios are used as they are; where no capture holds the situation
(a pickup, a transfer to an outside number, a failed click-to-call, an IVR
hang-up), the test edits a captured stream (tests/trace_edits.py) and says how.
"""

from __future__ import annotations

from pathlib import Path

from pbxbridge.ami.frames import Frame
from pbxbridge.calls.model import (
    CallStatus,
    ClosedBy,
    Direction,
    FailureReason,
)
from pbxbridge.calls.tracker import ORIGINATE_WAIT_S, CallTracker
from pbxbridge.routing.sim_originate import manager_leg_fails
from tests.trace_edits import (
    about,
    channel_event,
    drop,
    events_of,
    index_of,
    only,
    relink,
    rename,
    run,
    uid_of,
)

# -- the PBX ended it, or the caller gave up ------------------------------------------


def test_queues_timing_out_is_missed_not_abandoned(shared_dir: Path) -> None:
    call = only(run(events_of(shared_dir / "16-queues-time-out.ami")))
    # app_queue sent QueueCallerAbandon twice, yet the dialplan hung up on a caller still waiting.
    assert call.status is CallStatus.MISSED
    assert call.queues == ("sales", "overflow") and not call.voicemail


def test_caller_sent_to_voicemail_is_missed_with_the_message(shared_dir: Path) -> None:
    call = only(run(events_of(shared_dir / "17-voicemail.ami")))
    # The caller hung up after leaving a message: still the company's unanswered call.
    assert call.status is CallStatus.MISSED
    assert call.voicemail
    assert call.voicemail_file == "/var/lib/lab/spool/voicemail/lab/300/INBOX/msg0000"


def test_caller_hanging_up_in_the_queue_is_abandoned(shared_dir: Path) -> None:
    call = only(run(events_of(shared_dir / "03-inbound-abandoned.ami")))
    assert call.status is CallStatus.ABANDONED and not call.voicemail


def _caller_only(events: list[Frame], caller: set[str]) -> list[Frame]:
    """The caller's own events up to the queue, then how its channels ended: an IVR branch."""
    join = index_of(events, lambda f: f["Event"] == "QueueCallerJoin")
    start = [f for f in events[:join] if about(f, caller) and f.get("Application") != "Queue"]
    hangup = index_of(events, lambda f: f["Event"] in ("HangupRequest", "SoftHangupRequest") and about(f, caller), join)
    end = [f for f in events[hangup:] if about(f, caller) and f["Event"] not in ("DialEnd", "QueueCallerAbandon",
                                                                             "QueueCallerLeave", "BridgeLeave")]
    return start + end


def test_the_dialplan_hanging_up_before_anyone_was_offered_is_missed(shared_dir: Path) -> None:
    """16-queues-time-out cut to the caller's own channels: the dialplan (after hours, an IVR
    branch) hangs the caller up without offering it to anyone."""
    events = events_of(shared_dir / "16-queues-time-out.ami")
    caller = {uid_of(events, "Local/79161117003@client-sim-00000008;1"),
              uid_of(events, "Local/79161117003@client-sim-00000008;2")}
    call = only(run(_caller_only(events, caller)))
    assert call.direction is Direction.INBOUND and call.queues == ()
    assert call.status is CallStatus.MISSED


def test_the_caller_hanging_up_in_the_menu_is_abandoned(shared_dir: Path) -> None:
    """03-inbound-abandoned cut the same way: the caller hangs up before being offered to anyone."""
    events = events_of(shared_dir / "03-inbound-abandoned.ami")
    first = next(f for f in events if f["Event"] == "Newchannel")
    caller = {first["Uniqueid"], uid_of(events, first["Channel"][:-1] + "2")}
    call = only(run(_caller_only(events, caller)))
    assert call.status is CallStatus.ABANDONED


def test_hanging_up_on_the_announcement_after_the_queue_gave_up_is_missed(shared_dir: Path) -> None:
    """17-voicemail without the voicemail: the queue timed out, the caller heard what followed
    and hung up; the company, not the caller, gave up first."""
    events = drop(events_of(shared_dir / "17-voicemail.ami"), lambda f: f.get("Application") == "VoiceMail"
                  or f["Event"] == "MessageWaiting" or f.get("Variable") in ("VM_MESSAGEFILE", "VMSTATUS"))
    call = only(run(events))
    assert call.status is CallStatus.MISSED and not call.voicemail


# -- transfers ---------------------------------------------------------------------------


def test_attended_transfer_lists_the_colleague_in_one_call(shared_dir: Path) -> None:
    call = only(run(events_of(shared_dir / "14-attended-transfer.ami")))
    assert (call.manager, call.final_manager, call.transferred_to) == ("203", "205", ("205",))
    # The consultation's own recording belongs to this call.
    assert any("internal-205-" in f for f in call.recording_files)


def test_unanswered_consultation_is_no_transfer(shared_dir: Path) -> None:
    call = only(run(events_of(shared_dir / "15-attended-transfer-unanswered.ami")))
    assert (call.manager, call.final_manager, call.transferred_to) == ("203", "203", ())
    # 204's handset rang for 203's question, not with the client's call: no missed offer for 204.
    assert call.rang == ("203",)


def test_consultation_made_as_a_call_of_its_own_joins_the_clients_call(shared_dir: Path) -> None:
    """14-attended-transfer with the consultation's channels on a linkedid of their own, as when
    the handset itself (SIP REFER) places the consultation as a new call."""
    events = events_of(shared_dir / "14-attended-transfer.ami")
    consult = {f["Uniqueid"] for f in events if f["Event"] == "Newchannel" and "205@" in f["Channel"]}
    events = relink(events, consult, min(consult))
    call = only(run(events))
    assert call.direction is Direction.INBOUND and call.client_number == "79161117001"
    assert (call.manager, call.final_manager, call.transferred_to) == ("203", "205", ("205",))


def test_blind_transfer_to_an_outside_number(shared_dir: Path) -> None:
    """12-blind-transfer with the transfer going to a mobile: the colleague's Local pipe becomes
    the trunk's channel (its ;2 end dropped) and the BlindTransfer names the number."""
    events = events_of(shared_dir / "12-blind-transfer.ami")
    far = "Local/202@agent-phone-00000060"
    far_2 = uid_of(events, far + ";2")
    events = drop(events, lambda f: about(f, {far_2}) and not f["Event"].startswith("Dial"))
    events = rename(events, far + ";1", "PJSIP/trunk-00000060")
    for frame in events:
        if frame["Event"] == "BlindTransfer":
            frame["Extension"] = "89161234567"
    call = only(run(events))
    assert call.status is CallStatus.ANSWERED
    assert (call.manager, call.final_manager, call.transferred_to) == ("203", "203", ("89161234567",))
    # Talk time runs from 203's answer to the client's hang-up, the mobile's part included.
    assert 40 <= call.talk_s <= 45


# -- pickup ------------------------------------------------------------------------------


def test_pickup_of_a_ringing_colleague_is_answered_by_who_picked_up(shared_dir: Path) -> None:
    """01-inbound-answered, with 202 picking up 203's ringing line (FreePBX ``**203``): a
    channel of 202's own (shaped on the capture's Newchannel/Newexten/Hangup) and the
    ``Pickup`` event as Asterisk documents it, naming 203's ringing channel as the target."""
    events = events_of(shared_dir / "01-inbound-answered.ami")
    target = "Local/203@agent-phone-00000003;2"
    target_uid = uid_of(events, target)
    answer = index_of(events, lambda f: f["Event"] == "Newexten" and f.get("Channel") == target
                      and f.get("Application") == "Answer")
    stamp = events[answer]["Timestamp"]
    first = next(f for f in events if f["Event"] == "Newchannel")
    picker = {"Channel": "PJSIP/202-000000aa", "Uniqueid": "1795723450.90", "Linkedid": "1795723450.90",
              "CallerIDNum": "202", "Context": "from-internal", "Exten": "**203", "Timestamp": stamp}
    born = channel_event(first, **picker)
    dialled = channel_event(next(f for f in events if f["Event"] == "Newexten"), **picker,
                            Application="Pickup", AppData="203@PICKUPMARK")
    pickup: Frame = {"Event": "Pickup", "Privilege": "call,all", "Timestamp": stamp, **picker,
                     "TargetChannel": target, "TargetUniqueid": target_uid,
                     "TargetLinkedid": first["Linkedid"], "TargetCallerIDNum": "203"}
    gone = channel_event(next(f for f in reversed(events) if f["Event"] == "Hangup"), **picker)
    events[answer:answer] = [born, dialled, pickup]
    hung = index_of(events, lambda f: f["Event"] == "BridgeEnter")
    events.insert(hung, gone)
    call = only(run(events))
    assert call.status is CallStatus.ANSWERED
    assert (call.manager, call.final_manager) == ("202", "202")
    assert call.rang == ("203",)


# -- click-to-call that did not become a conversation --------------------------------------


def _manager_leg_fails(shared_dir: Path, dial_status: str, reason: str) -> list[Frame]:
    """pjsip-03-click-to-call-busy cut where 205's handset rings (see sim_originate.manager_leg_fails)."""
    return manager_leg_fails(events_of(shared_dir / "pjsip-03-click-to-call-busy.ami"), dial_status, reason)


def test_click_to_call_the_manager_did_not_pick_up(shared_dir: Path) -> None:
    events = _manager_leg_fails(shared_dir, "NOANSWER", "3")
    # A failed Originate's response may name the channel only as it was asked for, with no uniqueid.
    events[-1] = {**events[-1], "Channel": "PJSIP/205", "Uniqueid": "<null>"}
    call = only(run(events))
    assert call.direction is Direction.OUTBOUND
    assert (call.manager, call.client_number) == ("205", "79267770005")
    assert call.status is CallStatus.FAILED
    assert call.failure_reason is FailureReason.MANAGER_NO_ANSWER


def test_click_to_call_the_manager_rejected(shared_dir: Path) -> None:
    call = only(run(_manager_leg_fails(shared_dir, "BUSY", "5")))
    assert (call.direction, call.manager, call.client_number) == (Direction.OUTBOUND, "205", "79267770005")
    assert call.status is CallStatus.FAILED
    assert call.failure_reason is FailureReason.MANAGER_REJECTED


def test_click_to_call_without_its_response_is_still_the_managers_call_out(shared_dir: Path) -> None:
    """The response never comes (another AMI session placed it): after a few seconds of event
    time the call is given out as the manager's failed call, its number unknown."""
    events = _manager_leg_fails(shared_dir, "NOANSWER", "3")[:-1]
    tracker = CallTracker()
    assert [c for f in events for c in tracker.feed(f, 0.0)] == []
    # Held, not lost: a later event past the wait gives it out.
    past_the_wait = float(events[-1]["Timestamp"]) + ORIGINATE_WAIT_S + 1
    later = channel_event(events[-1], Event="FullyBooted", Timestamp=f"{past_the_wait:.6f}")
    call = only(tracker.feed(later, 0.0))
    assert (call.direction, call.manager, call.status) == (Direction.OUTBOUND, "205", CallStatus.FAILED)
    assert call.failure_reason is FailureReason.MANAGER_NO_ANSWER


def test_the_client_side_of_a_call_out_says_why(shared_dir: Path) -> None:
    busy = only(run(events_of(shared_dir / "pjsip-03-click-to-call-busy.ami")))
    assert (busy.status, busy.failure_reason) == (CallStatus.BUSY, FailureReason.CLIENT_BUSY)
    assert busy.client_number == "79267770005" and busy.manager == "205"
    unanswered = only(run(events_of(shared_dir / "07-outbound-noanswer.ami")))
    assert (unanswered.status, unanswered.failure_reason) == (CallStatus.NO_ANSWER, FailureReason.CLIENT_NO_ANSWER)
    answered = only(run(events_of(shared_dir / "pjsip-02-click-to-call.ami")))
    assert answered.failure_reason is None


# -- bad input -----------------------------------------------------------------------------


def test_a_capture_cut_mid_call_gives_the_call_out_once_with_a_warning(shared_dir: Path) -> None:
    events = events_of(shared_dir / "01-inbound-answered.ami")
    cut = index_of(events, lambda f: f["Event"] == "HangupRequest")
    tracker = CallTracker()
    assert [c for f in events[:cut] for c in tracker.feed(f, 0.0)] == []
    (call,) = tracker.end_of_stream(float(events[cut - 1]["Timestamp"]))
    assert call.closed_by is ClosedBy.RECONCILE and call.manager == "203"
    assert [lid for lid, _ in tracker.take_warnings()] == [call.linkedid]
    assert tracker.end_of_stream(2e9) == []


def test_a_second_hangup_and_a_stranger_are_warned_about_and_change_nothing(shared_dir: Path) -> None:
    events = events_of(shared_dir / "02-inbound-second-agent.ami")
    last = max(i for i, f in enumerate(events) if f["Event"] == "Hangup")
    stranger = channel_event(events[last], Channel="PJSIP/999-000000ff", Uniqueid="1.999", Linkedid="1.999")
    events = [*events[: last + 1], dict(events[last]), stranger, *events[last + 1:]]
    tracker = CallTracker()
    calls = [c for f in events for c in tracker.feed(f, 0.0)]
    assert len(calls) == 1 and calls[0].status is CallStatus.ANSWERED
    warned = dict(tracker.take_warnings())
    assert calls[0].linkedid in warned and "after its call ended" in warned[calls[0].linkedid]
    assert "never seen" in warned["1.999"]
