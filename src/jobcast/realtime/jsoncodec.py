"""The Socket.IO server's wire codec: orjson behind the ``json`` module's two functions,
and a packet class that finds binary payloads more cheaply.

Every event a web process delivers is decoded once from the message queue and encoded once
for its room; with the standard library that was about a quarter of the web process's CPU per
event (docs/performance.md). python-socketio and python-engineio take any module-like object
with ``dumps``/``loads``; they pass ``separators`` for compact output, which orjson always is.
"""

from __future__ import annotations

from typing import Any

import orjson
from socketio.packet import Packet as SocketIOPacket

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(obj: Any, **_kwargs: Any) -> str:
    return orjson.dumps(obj, option=_OPTIONS).decode()


def loads(data: str | bytes, **_kwargs: Any) -> Any:
    return orjson.loads(data)


class Packet(SocketIOPacket):
    """Socket.IO packets with a cheaper binary check: python-socketio walks every payload
    with ``functools.reduce`` over a list of lambda calls to look for bytes, about a tenth of
    the CPU per delivered event; this walk stops at the first bytes and builds no lists."""

    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        if isinstance(data, bytes | bytearray):
            return True
        if isinstance(data, list):
            return any(cls.data_is_binary(item) for item in data)
        if isinstance(data, dict):
            return any(cls.data_is_binary(value) for value in data.values())
        return False
