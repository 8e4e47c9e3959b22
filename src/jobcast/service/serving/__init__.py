"""How the service serves: gunicorn, the API bulkhead, lean sockets, the WebSocket handshake,
the heap freeze. Each a measured tweak (docs/performance.md), none part of the extension."""
