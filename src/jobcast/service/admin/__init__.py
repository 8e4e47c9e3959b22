"""The operator's view: every user's jobs under ``/api/v1/admin``, for admins only.

``guard`` answers anyone else on those paths with the 404 of a path that does not exist,
``actions`` cancels and re-runs jobs through ``jobcast.jobs.service`` with an entry in the audit
log (``audit``), and ``queries`` reads jobs, event logs and the audit log across owners.
"""
