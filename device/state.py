"""The recorder's decisions as one pure function: ``step(state, event) -> (state, effects)``.

No IO happens here. The caller (``lerec.device.media.recorder.Recorder``) feeds events from
buttons, the pipeline, the storage monitor and the clock, then carries out the effects.

Button semantics: pressing record while idle starts at once (feedback within the press).
Pressing record while recording only *arms* a stop: a short press stops on release, a long
press (held past the long-press time) marks the segment important instead of stopping, so an
officer who holds the button to mark never stops the recording by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Literal

Space = Literal["ok", "low", "full"]
LedState = Literal["off", "on", "blink"]


class BeepPattern(Enum):
    """Buzzer patterns; the value is a tuple of (on seconds, off seconds) pairs."""

    START = ((0.1, 0.0),)
    STOP = ((0.1, 0.1), (0.1, 0.0))
    MARK = ((0.05, 0.05), (0.05, 0.05), (0.05, 0.0))
    REFUSED = ((0.4, 0.0),)
    LOW_SPACE = ((0.4, 0.2), (0.4, 0.0))
    STORAGE_FULL = ((0.6, 0.2), (0.6, 0.2), (0.6, 0.0))
    CLOCK_UNTRUSTED = ((0.05, 0.1), (0.3, 0.1), (0.05, 0.0))


# ---------------------------------------------------------------- state


@dataclass(frozen=True)
class RecorderState:
    """Everything the decisions depend on."""

    powered: bool = False
    recording: bool = False
    audio_only: bool = False
    important: bool = False
    stop_pending: bool = False
    clock_trusted: bool = True
    space: Space = "ok"


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class PowerOn:
    audio_only: bool = False


@dataclass(frozen=True)
class PowerOff:
    pass


@dataclass(frozen=True)
class RecordPress:
    pass


@dataclass(frozen=True)
class RecordRelease:
    pass


@dataclass(frozen=True)
class RecordLongPress:
    pass


@dataclass(frozen=True)
class MarkPress:
    pass


@dataclass(frozen=True)
class SegmentRollover:
    pass


@dataclass(frozen=True)
class LowSpace:
    pass


@dataclass(frozen=True)
class SpaceFloorReached:
    pass


@dataclass(frozen=True)
class SpaceOk:
    pass


@dataclass(frozen=True)
class ClockUntrusted:
    pass


@dataclass(frozen=True)
class ClockTrusted:
    pass


Event = (
    PowerOn | PowerOff | RecordPress | RecordRelease | RecordLongPress | MarkPress
    | SegmentRollover | LowSpace | SpaceFloorReached | SpaceOk | ClockUntrusted | ClockTrusted
)

# ---------------------------------------------------------------- effects


@dataclass(frozen=True)
class StartRecording:
    audio_only: bool


@dataclass(frozen=True)
class StopRecording:
    reason: str


@dataclass(frozen=True)
class MarkImportant:
    pass


@dataclass(frozen=True)
class SetLeds:
    power: LedState
    video: LedState
    audio: LedState


@dataclass(frozen=True)
class Beep:
    pattern: BeepPattern


Effect = StartRecording | StopRecording | MarkImportant | SetLeds | Beep


def leds(state: RecorderState) -> SetLeds:
    """The LED picture for a state: green power, red video, yellow audio-only."""
    if not state.powered:
        return SetLeds("off", "off", "off")
    warn = state.space != "ok" or not state.clock_trusted
    return SetLeds(
        power="blink" if warn else "on",
        video="on" if state.recording and not state.audio_only else "off",
        audio="on" if state.recording and state.audio_only else "off",
    )


def step(state: RecorderState, event: Event) -> tuple[RecorderState, tuple[Effect, ...]]:
    """Apply one event; return the new state and the effects to carry out, in order."""
    new, effects = _transition(state, event)
    if leds(new) != leds(state):   # actions first, then lights, then sound
        at = next((i for i, e in enumerate(effects) if isinstance(e, Beep)), len(effects))
        effects = (*effects[:at], leds(new), *effects[at:])
    return new, effects


def _mark(state: RecorderState) -> tuple[RecorderState, tuple[Effect, ...]]:
    return replace(state, important=True, stop_pending=False), (
        MarkImportant(), Beep(BeepPattern.MARK))


def _transition(
    state: RecorderState, event: Event
) -> tuple[RecorderState, tuple[Effect, ...]]:
    if not state.powered:
        if isinstance(event, PowerOn):
            return replace(state, powered=True, audio_only=event.audio_only), ()
        return state, ()

    match event:
        case PowerOn():
            return state, ()
        case PowerOff():
            off = replace(state, powered=False, recording=False, stop_pending=False,
                          important=False)
            return off, (StopRecording("power-off"),) if state.recording else ()
        case RecordPress():
            if state.recording:
                return replace(state, stop_pending=True), ()
            if state.space == "full":
                return state, (Beep(BeepPattern.STORAGE_FULL),)
            started = replace(state, recording=True, important=False, stop_pending=False)
            return started, (StartRecording(state.audio_only), Beep(BeepPattern.START))
        case RecordRelease():
            if not state.stop_pending:
                return state, ()
            stopped = replace(state, recording=False, stop_pending=False, important=False)
            return stopped, (StopRecording("button"), Beep(BeepPattern.STOP))
        case RecordLongPress():
            return _mark(state) if state.recording else (state, ())
        case MarkPress():
            if state.recording:
                return _mark(state)
            return state, (Beep(BeepPattern.REFUSED),)
        case SegmentRollover():
            return (replace(state, important=False), ()) if state.recording else (state, ())
        case LowSpace():
            beep: tuple[Effect, ...] = (Beep(BeepPattern.LOW_SPACE),) if state.space == "ok" else ()
            return replace(state, space="low"), beep
        case SpaceFloorReached():
            if state.space == "full":
                return state, ()
            full = replace(state, space="full", recording=False, stop_pending=False,
                           important=False)
            stop: tuple[Effect, ...] = (
                (StopRecording("storage-full"),) if state.recording else ())
            return full, (*stop, Beep(BeepPattern.STORAGE_FULL))
        case SpaceOk():
            return replace(state, space="ok"), ()
        case ClockUntrusted():
            if not state.clock_trusted:
                return state, ()
            return replace(state, clock_trusted=False), (Beep(BeepPattern.CLOCK_UNTRUSTED),)
        case ClockTrusted():
            return replace(state, clock_trusted=True), ()
    raise TypeError(f"unknown recorder event {event!r}")
