"""Sign-outs and refresh-token reuse survive Redis losing its data.

A web server over a Redis of this module's own, which the tests kill and start again empty on
the same port: the database keeps revocations and refresh families, so a revoked token stays
revoked, a used refresh token stays used, and Redis's copy is rebuilt by the next check.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import requests
from redis import Redis
from redis.exceptions import RedisError

from jobcast.db.types import utcnow
from jobcast.service.auth.models import RevokedToken
from jobcast.service.auth.revocations import revoke, revoked_among
from jobcast.service.extensions import db
from tests.integration.conftest import ROOT, Stack
from tests.integration.support import Api, assert_problem, refusal
from tests.redis_server import RedisServer

ME = "/api/v1/me"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
LOADED = "jobcast:revocations:loaded"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("emptied-redis"), persist=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def web(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A web server alone (no worker) over that Redis and a SQLite database of its own."""
    overrides = {
        "JOBCAST_SOCKET_AUTH_CHECK_SECONDS": "0.5",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    with Stack(
        tmp_path_factory.mktemp("revocation-stack"),
        redis_url=redis_server.url,
        env_overrides=overrides,
        worker_pools=(),
    ) as stack:
        yield stack


def settled(call: Callable[[], requests.Response], seconds: float = 15) -> requests.Response:
    """The first answer that is not the 503 of a Redis the server has not reconnected to yet."""
    deadline = time.monotonic() + seconds
    while True:
        response = call()
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def me(user: Api, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token or user.token}"}
    return settled(lambda: user.get(ME, headers=headers))


def refresh(user: Api, refresh_token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {refresh_token}"}
    return settled(lambda: user.post(REFRESH, headers=headers))


def test_a_signed_out_session_stays_signed_out_after_redis_restarts_empty(
    web: Stack, redis_server: RedisServer
) -> None:
    signed_out = web.api().signup()
    assert signed_out.post(LOGOUT).status_code == 204
    assert_problem(me(signed_out), 401)
    still_in = web.api().signup()

    redis_server.restart_empty()

    assert assert_problem(me(signed_out), 401)["detail"] == "token revoked"
    assert assert_problem(refresh(signed_out, signed_out.refresh_token), 401)
    assert me(still_in).status_code == 200
    assert signed_out.email is not None
    again = web.api().login(signed_out.email, "correct horse battery")
    assert me(again).status_code == 200
    # The checks above rebuilt Redis's copy: requests read Redis alone again.
    assert Redis.from_url(redis_server.url).exists(LOADED)


def test_a_used_refresh_token_is_still_detected_after_redis_restarts_empty(
    web: Stack, redis_server: RedisServer
) -> None:
    user = web.api().signup()
    first_refresh = user.refresh_token
    rotated = refresh(user, first_refresh)
    assert rotated.status_code == 200
    newest = rotated.json()

    redis_server.restart_empty()

    reused = assert_problem(refresh(user, first_refresh), 401)
    assert "already used" in reused["detail"]
    # The reuse signed out the whole sign-in, the pair it was exchanged for included.
    assert_problem(me(user, newest["access_token"]), 401)
    assert_problem(refresh(user, newest["refresh_token"]), 401)


def test_a_refresh_token_works_once_across_a_restart(web: Stack, redis_server: RedisServer) -> None:
    user = web.api().signup()
    redis_server.restart_empty()
    rotated = refresh(user, user.refresh_token)
    assert rotated.status_code == 200
    assert me(user, rotated.json()["access_token"]).status_code == 200
    assert refresh(user, rotated.json()["refresh_token"]).status_code == 200


def test_a_revoked_token_cannot_open_a_socket_after_redis_restarts_empty(
    web: Stack, redis_server: RedisServer
) -> None:
    user = web.api().signup()
    assert user.post(LOGOUT).status_code == 204
    redis_server.restart_empty()
    settled(lambda: web.api().get("/readyz"))
    assert refusal(web.base_url, user.token).endswith("token revoked")


def test_a_socket_is_disconnected_by_a_sign_out_made_after_redis_restarted_empty(
    web: Stack, redis_server: RedisServer
) -> None:
    user = web.api().signup()
    listener = web.listen(user.token)
    reasons: list[dict[str, str]] = []
    listener.client.on("auth.revoked", reasons.append)
    try:
        redis_server.restart_empty()
        assert settled(lambda: user.post(LOGOUT)).status_code == 204
        deadline = time.monotonic() + 15
        while listener.client.connected and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not listener.client.connected
        assert reasons == [{"reason": "revoked"}]
    finally:
        listener.close()


def test_without_redis_copy_a_background_check_waits_instead_of_guessing(
    web: Stack, redis_server: RedisServer
) -> None:
    """The socket sweep has no app context to ask the database: it gets a RedisError (and
    decides on its next round), never "not revoked" for a token that is."""
    app = web.app()
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    claims = {"jti": "a-token", "fam": "a-family", "exp": time.time() + 60}
    with app.app_context():
        revoke(redis, claims)
    redis.flushall()
    with pytest.raises(RedisError):
        revoked_among(redis, [claims])
    with app.app_context():
        assert revoked_among(redis, [claims]) == {"a-token"}
    assert redis.exists(LOADED)
    assert revoked_among(redis, [claims]) == {"a-token"}


def test_expired_revocations_are_deleted_as_new_ones_are_written(
    web: Stack, redis_server: RedisServer
) -> None:
    app = web.app()
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    with app.app_context():
        db.session.add(
            RevokedToken(kind="jti", id="long-gone", expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
        revoke(redis, {"jti": "just-now", "exp": time.time() + 60})
        left = {row.id for row in db.session.scalars(db.select(RevokedToken))}
    assert "long-gone" not in left and "just-now" in left
