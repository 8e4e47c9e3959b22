"""``email.send``: one plain-text email through the configured SMTP server.

SMTP says which failures are worth another try: a 4xx reply is temporary by definition, and a
refused or dropped connection usually is too, so those raise TransientJobError and the job is
retried with backoff. A 5xx reply (unknown recipient, rejected sender, failed login) will not
change on retry, so it fails the job at once with the server's answer.

Whom it may write to (``JOBCAST_EMAIL_RECIPIENTS``) is known at submit, so a recipient the server
will not mail is refused there (a 422); the job checks again before sending, since the setting
may have changed in between.

The Message-ID is derived from the job id, so if a retry re-sends a message whose first
attempt was in fact delivered (the connection dropped before the server's reply), the copies
share one Message-ID and mail clients can collapse them.
"""

from __future__ import annotations

import functools
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Annotated

from flask import current_app
from pydantic import BaseModel, EmailStr, Field, StringConstraints

from jobcast.config import Settings
from jobcast.errors import JobError, ParamsRefused, TransientJobError
from jobcast.jobs.context import JobContext
from jobcast.jobs.registry import job
from jobcast.service.auth.models import User
from jobcast.service.extensions import db

# A header value must not carry line breaks: they would start headers of the caller's choosing.
Subject = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\r\n]*$")]


class EmailParams(BaseModel):
    model_config = {"extra": "forbid"}

    to: EmailStr = Field(description="The recipient's address.")
    subject: Subject = Field(description="One line, at most 200 characters.")
    body: str = Field(min_length=1, max_length=100_000, description="The plain-text body.")


def build_message(settings: Settings, params: EmailParams, job_id: str) -> EmailMessage:
    """The message as it will be sent, with a Message-ID and the job id in ``X-Jobcast-Job``."""
    domain = parseaddr(settings.smtp_from)[1].rpartition("@")[2] or "localhost"
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = params.to
    message["Subject"] = params.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{job_id}@{domain}>"
    message["X-Jobcast-Job"] = job_id
    message.set_content(params.body)
    return message


def deliver(settings: Settings, message: EmailMessage) -> None:
    """Hand ``message`` to the SMTP server; raise TransientJobError or JobError on failure."""
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=_tls_context())
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password)
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        code, reply = next(iter(exc.recipients.values()))
        raise _by_code(
            code, reply, f"the SMTP server refused the recipient {message['To']}"
        ) from None
    except smtplib.SMTPResponseException as exc:
        what = "the SMTP server refused the message"
        raise _by_code(exc.smtp_code, exc.smtp_error, what) from None
    except smtplib.SMTPServerDisconnected as exc:
        raise _unreachable(exc) from None
    except (smtplib.SMTPException, ssl.SSLCertVerificationError) as exc:
        # No STARTTLS or AUTH where the settings ask for them, an untrusted certificate:
        # the configuration must change first.
        raise JobError(f"the SMTP server cannot be used: {exc}", code="smtp_rejected") from None
    except OSError as exc:  # refused, timed out, unresolvable
        raise _unreachable(exc) from None


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One context per process: loading the CA store takes a noticeable slice of CPU, which
    on the gevent pool would stall every other job each time a message is sent."""
    return ssl.create_default_context()


def _unreachable(exc: OSError) -> TransientJobError:
    # The host and port stay out of the message: the job's owner reads it.
    return TransientJobError(
        f"could not reach the SMTP server ({type(exc).__name__}: {exc})", code="smtp_unavailable"
    )


def _by_code(code: int, reply: bytes | str, what: str) -> JobError:
    """A 5xx reply is permanent; anything else (4xx, or no reply) is worth a retry."""
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else reply
    if 500 <= code < 600:
        return JobError(f"{what}: {code} {text}", code="smtp_rejected")
    return TransientJobError(f"{what} (temporarily): {code} {text}", code="smtp_unavailable")


def recipient_allowed(recipient: str, owner_email: str, allowed: str) -> bool:
    """Whether ``JOBCAST_EMAIL_RECIPIENTS`` (``allowed``) lets this job's owner write to
    ``recipient``; without the setting, users can only mail themselves (no open relay)."""
    recipient = recipient.strip().lower()
    if recipient == owner_email.strip().lower():
        return True
    domains = {d.strip().lower().lstrip("@") for d in allowed.split(",") if d.strip()}
    return "*" in domains or recipient.rpartition("@")[2] in domains


def check_recipient(params: EmailParams, owner_id: str) -> None:
    """Raise ParamsRefused unless the owner may write to ``params.to``: at submit and again
    before sending."""
    settings: Settings = current_app.config["JOBCAST"]
    owner = db.session.get(User, int(owner_id))
    owner_email = owner.email if owner else ""
    if not recipient_allowed(params.to, owner_email, settings.email_recipients):
        raise ParamsRefused(
            f"this server does not send mail to {params.to}: only to your own address"
            " or to the domains its operator allows (JOBCAST_EMAIL_RECIPIENTS)",
            field="to",
            code="recipient_not_allowed",
        )


# retry_lost=False: an attempt lost mid-run may have sent the email; better one failed job than
# two emails.
@job(
    "email.send",
    params=EmailParams,
    title="Send an email",
    bound="io",
    check=check_recipient,
    retry_lost=False,
)
def send(ctx: JobContext[EmailParams]) -> dict[str, str]:
    """Send one plain-text email from the configured sender."""
    settings: Settings = current_app.config["JOBCAST"]
    check_recipient(ctx.params, ctx.owner_id)
    message = build_message(settings, ctx.params, ctx.job_id)
    ctx.progress(10, f"sending to {ctx.params.to}")
    deliver(settings, message)
    return {"to": ctx.params.to, "message_id": message["Message-ID"]}
