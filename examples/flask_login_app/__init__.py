"""A Flask-Login site that adds jobcast (see README.md)."""
