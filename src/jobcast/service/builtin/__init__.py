"""The job types jobcast ships; importing this package registers them (the llm.* ones run only
where ``JOBCAST_LLM_BASE_URL`` is set)."""

from jobcast.llm import jobs as llm
from jobcast.service.builtin import demo, exports, mailer, models, report, stats

__all__ = ["demo", "exports", "llm", "mailer", "models", "report", "stats"]
