"""Speech recognition plug-in point for 第二十七条 (声音资料应当附有文字记录).

The transcript of an audio record is a text field people fill in. A deployment that has a
speech recogniser registers a :class:`Transcriber`; the admin service then offers a draft
transcript for uploaded audio, which a person checks and saves. None is required, none ships.

    class MyAsr:
        name = "my-asr"
        label = "本地语音识别"
        async def transcribe(self, data: bytes, content_type: str) -> str: ...

    register(MyAsr())
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Transcriber(Protocol):
    name: str  # stable id, stored with the transcript as its source
    label: str  # shown to people

    async def transcribe(self, data: bytes, content_type: str) -> str:
        """A draft transcript of the audio in ``data`` (Chinese text)."""
        ...


_registry: dict[str, Transcriber] = {}


def register(transcriber: Transcriber) -> None:
    if not isinstance(transcriber, Transcriber):
        raise TypeError("a transcriber needs name, label and async transcribe(data, content_type)")
    _registry[transcriber.name] = transcriber


def unregister(name: str) -> None:
    _registry.pop(name, None)


def available() -> list[Transcriber]:
    return list(_registry.values())


def get(name: str) -> Transcriber | None:
    return _registry.get(name)
