"""``python -m examples.flask_login_app``: the development server (``PORT``, default 5000)."""

import os

from examples.flask_login_app.app import app, socketio

socketio.run(
    app,
    host=os.environ.get("HOST", "127.0.0.1"),
    port=int(os.environ.get("PORT", "5000")),
    allow_unsafe_werkzeug=True,  # Werkzeug's server, for development: see the README
)
