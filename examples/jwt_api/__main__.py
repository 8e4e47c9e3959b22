"""``python -m examples.jwt_api``: the development server (``PORT``, default 5000)."""

import os

from examples.jwt_api.app import app

# The Socket.IO server jobcast made for this app (it has none of its own).
socketio = app.extensions["socketio"]
socketio.run(
    app,
    host=os.environ.get("HOST", "127.0.0.1"),
    port=int(os.environ.get("PORT", "5000")),
    allow_unsafe_werkzeug=True,  # Werkzeug's server, for development: see the README
)
