"""Download links for result files: short-lived, signed, bound to one job and its owner.

A plain browser link cannot carry an Authorization header, so the link itself carries a signed
token naming the job and the owner; it expires after ``download_url_minutes``.
"""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeTimedSerializer

_SALT = "jobcast.download"


class DownloadSigner:
    def __init__(
        self, secret: str, *, max_age_seconds: int, public_url: str = "", prefix: str = ""
    ) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT)
        self.max_age_seconds = max_age_seconds
        self.base = public_url.rstrip("/") + prefix.rstrip("/")

    def url(self, job_id: str, owner_id: str) -> str:
        token = self._serializer.dumps({"j": job_id, "o": owner_id})
        return f"{self.base}/jobs/{job_id}/result?token={token}"

    def owner(self, token: str, job_id: str) -> str | None:
        """The owner the token grants ``job_id`` to; None if invalid, expired or for another job."""
        try:
            data = self._serializer.loads(token, max_age=self.max_age_seconds)
        except BadSignature:  # includes SignatureExpired
            return None
        if not isinstance(data, dict) or data.get("j") != job_id:
            return None
        owner = data.get("o")
        return owner if isinstance(owner, str) else None
