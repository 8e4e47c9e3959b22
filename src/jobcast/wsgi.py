"""The module the web server imports: ``gunicorn jobcast.wsgi:app``."""

from jobcast.app import create_app

app = create_app()
