"""The module the web server imports: ``gunicorn jobcast.service.wsgi:app``."""

from jobcast.realtime.handlers import listen_now
from jobcast.service.app import create_app
from jobcast.service.extensions import socketio
from jobcast.service.serving.heap import freeze_startup_objects

app = create_app()
listen_now(socketio)
freeze_startup_objects()
