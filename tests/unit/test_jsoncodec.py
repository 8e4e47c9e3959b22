"""The Socket.IO wire codec: same packets as python-socketio's own, made more cheaply."""

from __future__ import annotations

import json
from typing import Any

import pytest
from socketio.packet import Packet as SocketIOPacket

from jobcast.realtime import jsoncodec

PAYLOADS: list[Any] = [
    ["job.progress", {"job_id": "a", "seq": 3, "progress": 12.5, "message": None}],
    ["job.succeeded", {"result": {"rows": [1, 2, {"x": "é"}]}, "ok": True}],
    ["attachment", {"file": b"\x00\x01"}],
    ["deep", [[[{"k": bytearray(b"z")}]]]],
    ["empty", {}],
]


@pytest.mark.parametrize("data", PAYLOADS)
def test_binary_detection_agrees_with_python_socketio(data: Any) -> None:
    assert jsoncodec.Packet.data_is_binary(data) == SocketIOPacket.data_is_binary(data)


@pytest.mark.parametrize("data", [p for p in PAYLOADS if not SocketIOPacket.data_is_binary(p)])
def test_dumps_is_compact_json_that_the_standard_library_reads_back(data: Any) -> None:
    text = jsoncodec.dumps(data, separators=(",", ":"))
    assert isinstance(text, str)
    assert json.loads(text) == data
    assert text == json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def test_loads_takes_text_and_bytes() -> None:
    assert jsoncodec.loads('{"a":[1,2]}') == jsoncodec.loads(b'{"a":[1,2]}') == {"a": [1, 2]}
