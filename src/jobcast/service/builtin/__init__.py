"""The job types jobcast ships; importing this package registers them."""

from jobcast.service.builtin import demo, exports, mailer, models, report, stats

__all__ = ["demo", "exports", "mailer", "models", "report", "stats"]
