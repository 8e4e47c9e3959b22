"""The job types jobcast ships; importing this package registers them."""

from jobcast.builtin import demo, models

__all__ = ["demo", "models"]
