"""Buttons, LEDs and buzzer through gpiozero, with the pin factory passed in.

WIRING (BCM numbering; defaults of :class:`lerec.device.media.config.GpioConfig`)::

    part                    BCM pin  phys. pin  wiring
    record button              17        11     momentary switch to GND (internal pull-up)
    mark-important button      27        13     momentary switch to GND (internal pull-up)
    power LED (green)           5        29     330 ohm resistor, LED anode, cathode to GND
    video LED (red)             6        31     330 ohm resistor, LED anode, cathode to GND
    audio-only LED (yellow)    13        33     330 ohm resistor, LED anode, cathode to GND
    buzzer (active, 3.3 V)     19        35     via NPN transistor (1 kohm base), to GND

Buttons turn into state-machine events (:mod:`lerec.device.state`); effects come back as
``set_leds`` and ``beep``. Beep patterns play in order on one thread ("lerec-buzzer").
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import warnings
from collections.abc import Callable

from gpiozero import LED, Button, Buzzer, Factory
from lerec.device.media.config import GpioConfig
from lerec.device.state import (
    BeepPattern,
    Event,
    LedState,
    MarkPress,
    RecordLongPress,
    RecordPress,
    RecordRelease,
)

log = logging.getLogger(__name__)

WIRING: dict[str, str] = {
    "record_button": "BCM 17 (pin 11) -> switch -> GND, internal pull-up",
    "mark_button": "BCM 27 (pin 13) -> switch -> GND, internal pull-up",
    "power_led": "BCM 5 (pin 29) -> 330R -> green LED -> GND",
    "video_led": "BCM 6 (pin 31) -> 330R -> red LED -> GND",
    "audio_led": "BCM 13 (pin 33) -> 330R -> yellow LED -> GND",
    "buzzer": "BCM 19 (pin 35) -> 1k -> NPN base; active 3.3 V buzzer on the collector",
}

BLINK_ON, BLINK_OFF = 0.5, 0.5


class Controls:
    """The recorder's physical interface. Use as a context manager or call :meth:`close`."""

    def __init__(self, config: GpioConfig, pin_factory: Factory) -> None:
        kw = {"pin_factory": pin_factory}
        self.record = Button(config.record_button, pull_up=True,
                             bounce_time=config.bounce_seconds,
                             hold_time=config.long_press_seconds, **kw)
        self.mark = Button(config.mark_button, pull_up=True,
                           bounce_time=config.bounce_seconds, **kw)
        self.power_led = LED(config.power_led, **kw)
        self.video_led = LED(config.video_led, **kw)
        self.audio_led = LED(config.audio_led, **kw)
        self.buzzer = Buzzer(config.buzzer, **kw)
        self._handler: Callable[[Event], None] | None = None
        self._beeps: queue.Queue[BeepPattern | None] = queue.Queue()
        self._leds: dict[str, LedState] = {}
        self._buzzer_thread = threading.Thread(target=self._play, name="lerec-buzzer",
                                               daemon=True)
        self._buzzer_thread.start()

    def __enter__(self) -> Controls:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def attach(self, handler: Callable[[Event], None] | None) -> None:
        """Send button events to ``handler`` (it must not block), or detach with None."""
        self._handler = handler
        if handler is None:
            with warnings.catch_warnings():   # gpiozero warns on None; here it is intended
                warnings.simplefilter("ignore")
                self.record.when_pressed = self.record.when_released = None
                self.record.when_held = self.mark.when_pressed = None
            return
        self.record.when_pressed = lambda: handler(RecordPress())
        self.record.when_released = lambda: handler(RecordRelease())
        self.record.when_held = lambda: handler(RecordLongPress())
        self.mark.when_pressed = lambda: handler(MarkPress())

    def set_leds(self, power: LedState, video: LedState, audio: LedState) -> None:
        for name, led, want in (("power", self.power_led, power),
                                ("video", self.video_led, video),
                                ("audio", self.audio_led, audio)):
            if self._leds.get(name) == want:
                continue
            self._leds[name] = want
            if want == "on":
                led.on()
            elif want == "off":
                led.off()
            else:
                led.blink(BLINK_ON, BLINK_OFF)

    def beep(self, pattern: BeepPattern) -> None:
        """Queue a beep pattern; returns at once."""
        self._beeps.put(pattern)

    def _play(self) -> None:
        while True:
            pattern = self._beeps.get()
            if pattern is None:
                return
            for on_s, off_s in pattern.value:
                self.buzzer.on()
                time.sleep(on_s)
                self.buzzer.off()
                if off_s:
                    time.sleep(off_s)
            time.sleep(0.15)   # a gap so consecutive patterns stay distinct

    def close(self) -> None:
        self.attach(None)
        self._beeps.put(None)
        self._buzzer_thread.join(timeout=5)
        for dev in (self.record, self.mark, self.power_led, self.video_led, self.audio_led,
                    self.buzzer):
            dev.close()
