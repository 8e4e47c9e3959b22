"""The audit log keeps every admin action that took effect: role changes in their own commit,
job actions written ahead and settled after; and migration 0007 leaves existing users as they
were, none of them an admin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select, text

from jobcast import create_app
from jobcast.errors import Conflict, NotFound
from jobcast.service import migrate
from jobcast.service.admin import audit
from jobcast.service.admin.models import AuditEntry
from jobcast.service.auth.users import create_user, set_admin
from jobcast.service.extensions import db

ADMIN = audit.Actor.admin(7, "req-1")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app({"env": "testing", "database_url": f"sqlite:///{tmp_path / 'a.db'}"})
    with app.app_context():
        migrate.upgrade()
        yield app


def entries() -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_an_action_that_succeeds_is_marked_done_with_what_it_noted(app: Flask) -> None:
    with audit.written_ahead(ADMIN, "job.cancel", "job", "j1", {"type": "t"}) as entry:
        assert entries()[0].detail["outcome"] == "pending"  # committed before the action
        audit.note(entry, status_after="cancelled")
    (done,) = entries()
    assert (done.actor_id, done.action, done.target_id) == (7, "job.cancel", "j1")
    assert done.detail == {
        "via": "api",
        "request_id": "req-1",
        "type": "t",
        "outcome": "done",
        "status_after": "cancelled",
    }


def test_a_refused_action_leaves_no_entry(app: Flask) -> None:
    with pytest.raises(Conflict), audit.written_ahead(ADMIN, "job.rerun", "job", "j1", {}):
        raise Conflict("the job is already succeeded")
    assert entries() == []


def test_an_action_that_breaks_unexpectedly_stays_recorded_as_error(app: Flask) -> None:
    with pytest.raises(RuntimeError), audit.written_ahead(ADMIN, "job.cancel", "job", "j1", {}):
        raise RuntimeError("the broker went away mid-way")
    assert [e.detail["outcome"] for e in entries()] == ["error"]


def test_role_changes_are_audited_in_their_own_commit_and_only_when_they_change(
    app: Flask,
) -> None:
    cli = audit.Actor.command_line()
    user = create_user("Ops@Example.com", "a long password", admin=True, actor=cli)
    assert user.is_admin
    assert set_admin("ops@example.com", True, cli) == (user, False)
    assert set_admin("OPS@example.com", False, cli) == (user, True)
    assert not db.session.get(type(user), user.id).is_admin
    assert [(e.action, e.target_id, e.actor_id) for e in entries()] == [
        ("user.create", str(user.id), None),
        ("user.demote", str(user.id), None),
    ]
    assert entries()[0].detail["via"] == "cli"
    with pytest.raises(NotFound):
        set_admin("nobody@example.com", True, cli)


def test_migration_0007_keeps_existing_users_and_makes_none_an_admin(tmp_path: Path) -> None:
    app = create_app({"env": "testing", "database_url": f"sqlite:///{tmp_path / 'm.db'}"})
    with app.app_context():
        migrate.upgrade("0006")
        with db.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO users (email, password_hash, created_at)"
                    " VALUES ('old@example.com', 'x', '2026-01-01 00:00:00')"
                )
            )
        migrate.upgrade()
        with db.engine.connect() as connection:
            rows = connection.execute(text("SELECT email, is_admin FROM users")).all()
        assert [(email, bool(flag)) for email, flag in rows] == [("old@example.com", False)]
        migrate.downgrade("0006")
        with db.engine.connect() as connection:
            assert connection.execute(text("SELECT email FROM users")).all() == [
                ("old@example.com",)
            ]
