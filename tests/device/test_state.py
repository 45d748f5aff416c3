"""The recorder state machine as a pure function: a table of transitions."""

from __future__ import annotations

from dataclasses import replace

import pytest
from lerec.device.state import (
    Beep,
    ClockTrusted,
    ClockUntrusted,
    LowSpace,
    MarkImportant,
    MarkPress,
    PowerOff,
    PowerOn,
    RecorderState,
    RecordLongPress,
    RecordPress,
    RecordRelease,
    SegmentRollover,
    SetLeds,
    SpaceFloorReached,
    SpaceOk,
    StartRecording,
    StopRecording,
    leds,
    step,
)
from lerec.device.state import BeepPattern as B

OFF = RecorderState()
IDLE = RecorderState(powered=True)
REC = replace(IDLE, recording=True)
REC_ARMED = replace(REC, stop_pending=True)
REC_IMPORTANT = replace(REC, important=True)
AUDIO_IDLE = replace(IDLE, audio_only=True)
FULL = replace(IDLE, space="full")
LOW = replace(IDLE, space="low")
UNTRUSTED = replace(IDLE, clock_trusted=False)

ON_IDLE = SetLeds("on", "off", "off")
ON_REC = SetLeds("on", "on", "off")

TABLE = [
    # (name, state, event, new state, effects)
    ("power on", OFF, PowerOn(), IDLE, (ON_IDLE,)),
    ("power on audio-only", OFF, PowerOn(audio_only=True), AUDIO_IDLE, (ON_IDLE,)),
    ("ignored while off", OFF, RecordPress(), OFF, ()),
    ("second power on", IDLE, PowerOn(), IDLE, ()),
    ("press starts", IDLE, RecordPress(), REC,
     (StartRecording(False), ON_REC, Beep(B.START))),
    ("press starts audio-only", AUDIO_IDLE, RecordPress(), replace(AUDIO_IDLE, recording=True),
     (StartRecording(True), SetLeds("on", "off", "on"), Beep(B.START))),
    ("release after start", REC, RecordRelease(), REC, ()),
    ("press while recording arms stop", REC, RecordPress(), REC_ARMED, ()),
    ("short press stops on release", REC_ARMED, RecordRelease(), IDLE,
     (StopRecording("button"), ON_IDLE, Beep(B.STOP))),
    ("long press marks instead of stopping", REC_ARMED, RecordLongPress(), REC_IMPORTANT,
     (MarkImportant(), Beep(B.MARK))),
    ("release after long press", REC_IMPORTANT, RecordRelease(), REC_IMPORTANT, ()),
    ("long press that started recording marks it", REC, RecordLongPress(), REC_IMPORTANT,
     (MarkImportant(), Beep(B.MARK))),
    ("long press idle", IDLE, RecordLongPress(), IDLE, ()),
    ("mark while recording", REC, MarkPress(), REC_IMPORTANT, (MarkImportant(), Beep(B.MARK))),
    ("mark while idle refused", IDLE, MarkPress(), IDLE, (Beep(B.REFUSED),)),
    ("rollover clears important", REC_IMPORTANT, SegmentRollover(), REC, ()),
    ("rollover idle", IDLE, SegmentRollover(), IDLE, ()),
    ("low space warns", IDLE, LowSpace(), LOW,
     (SetLeds("blink", "off", "off"), Beep(B.LOW_SPACE))),
    ("low space again is quiet", LOW, LowSpace(), LOW, ()),
    ("floor stops recording", REC, SpaceFloorReached(), replace(FULL),
     (StopRecording("storage-full"), SetLeds("blink", "off", "off"), Beep(B.STORAGE_FULL))),
    ("floor while idle", IDLE, SpaceFloorReached(), FULL,
     (SetLeds("blink", "off", "off"), Beep(B.STORAGE_FULL))),
    ("floor again is quiet", FULL, SpaceFloorReached(), FULL, ()),
    ("press refused when full", FULL, RecordPress(), FULL, (Beep(B.STORAGE_FULL),)),
    ("space back", FULL, SpaceOk(), IDLE, (ON_IDLE,)),
    ("clock untrusted", IDLE, ClockUntrusted(), UNTRUSTED,
     (SetLeds("blink", "off", "off"), Beep(B.CLOCK_UNTRUSTED))),
    ("clock untrusted again is quiet", UNTRUSTED, ClockUntrusted(), UNTRUSTED, ()),
    ("clock trusted", UNTRUSTED, ClockTrusted(), IDLE, (ON_IDLE,)),
    ("recording with untrusted clock", UNTRUSTED, RecordPress(),
     replace(UNTRUSTED, recording=True),
     (StartRecording(False), SetLeds("blink", "on", "off"), Beep(B.START))),
    ("power off while recording", REC, PowerOff(), OFF,
     (StopRecording("power-off"), SetLeds("off", "off", "off"))),
    ("power off idle", IDLE, PowerOff(), OFF, (SetLeds("off", "off", "off"),)),
]


@pytest.mark.parametrize(("name", "state", "event", "want_state", "want_effects"), TABLE,
                         ids=[row[0] for row in TABLE])
def test_transition(name, state, event, want_state, want_effects):
    new, effects = step(state, event)
    assert new == want_state
    assert effects == want_effects


def test_beep_patterns_are_distinct():
    values = [p.value for p in B]
    assert len(set(values)) == len(values)
    assert len(B.START.value) == 1 and len(B.STOP.value) == 2


def test_leds_follow_state():
    assert leds(OFF) == SetLeds("off", "off", "off")
    assert leds(REC) == ON_REC
    assert leds(replace(AUDIO_IDLE, recording=True)) == SetLeds("on", "off", "on")


def test_unknown_event_raises():
    with pytest.raises(TypeError):
        step(IDLE, object())  # type: ignore[arg-type]
