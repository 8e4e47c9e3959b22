"""WebSocket handshakes: browsers offer permessage-deflate; jobcast's small frames go plain."""

from __future__ import annotations

import websocket

from tests.integration.conftest import Stack


def test_the_server_declines_permessage_deflate_and_sends_plain_frames(stack: Stack) -> None:
    url = stack.base_url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    ws = websocket.create_connection(
        url,
        header=["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"],
        timeout=10,
    )
    try:
        assert ws.getstatus() == 101
        assert "sec-websocket-extensions" not in {k.lower() for k in ws.getheaders()}
        assert ws.recv().startswith("0{")  # Engine.IO's open packet, readable as sent
    finally:
        ws.close()
