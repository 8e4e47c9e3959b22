"""The module the web server imports: ``gunicorn jobcast.wsgi:app``."""

from jobcast.app import create_app
from jobcast.extensions import socketio
from jobcast.heap import freeze_startup_objects
from jobcast.realtime.handlers import listen_now

app = create_app()
listen_now(socketio)
freeze_startup_objects()
