"""A JSON API with Flask-JWT-Extended that adds jobcast (see README.md)."""
