"""Who owns a job: the ``Identity`` protocol a host app chooses, and adapters for common setups.

jobcast authenticates no one itself. The host gives it an identity object, and jobcast asks that
object for the owner of each HTTP request (``request_owner``), for a ``Grant`` naming the owner of
each live connection, a Socket.IO connect or an SSE stream, and when it stops
(``connection_grant``), and now and then which live grants are revoked (``revoked``), so it can
end those connections before they expire.

An owner is a string and is only ever compared to strings: a user id ``7`` is stored and matched
as ``"7"``, whatever type the host's user model uses. ``owner_str`` is that one conversion, and
every adapter goes through it.

The adapters: ``FlaskLoginIdentity`` (session cookies), ``JWTIdentity`` (Flask-JWT-Extended
bearer tokens) and ``CallableIdentity`` (functions of the host's own). Each imports its library
when it is built, so importing this module needs neither Flask-Login nor Flask-JWT-Extended.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from flask import current_app, has_request_context, request

from jobcast.errors import ConfigError, Unauthorized

MAX_OWNER_LENGTH = 255  # the size of the owner column

RevokedHook = Callable[[Sequence[Mapping[str, Any]]], Collection[str] | None]


def owner_str(value: object) -> str:
    """The owner string of a host's user id (``7`` -> ``"7"``), refusing values that name no one:
    a None, an empty string or a bool here is a bug in the host's identity, not a user."""
    if value is None or isinstance(value, bool):
        raise ValueError(f"an owner must be a string or an id, not {value!r}")
    owner = str(value)
    if not owner:
        raise ValueError("an owner must not be an empty string")
    if len(owner) > MAX_OWNER_LENGTH:
        raise ValueError(
            f"an owner must be at most {MAX_OWNER_LENGTH} characters, not {len(owner)}: "
            f"{owner[:40]!r}..."
        )
    return owner


@dataclass(frozen=True, slots=True)
class Grant:
    """Who a live connection (a socket, an event stream) belongs to, and until when."""

    owner: str
    expires_at: float | None = None  # epoch seconds when the credential stops; None = never
    token_id: str | None = None  # what ``revoked`` answers about (a JWT's jti)
    # What a revocation check needs later (a JWT's jti and family), not the whole credential.
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


class Identity(Protocol):
    """What jobcast asks of the host about owners; see the module docstring."""

    def request_owner(self) -> str | None:
        """The owner of the current HTTP request; None answers 401. May raise
        ``Unauthorized(detail)`` to say why."""
        ...

    def connection_grant(self, auth: Any) -> Grant | None:
        """The grant of a Socket.IO connect (``auth``: the client's auth payload) or an SSE
        request (``auth=None``), called in that request's context. None or ``Unauthorized``
        refuses it."""
        ...

    def revoked(self, grants: Sequence[Grant]) -> Collection[str] | None:
        """The ``token_id``s among live ``grants`` whose connections must end now; None when
        that cannot be told now (a store is down): jobcast asks again next time."""
        ...


class BaseIdentity(ABC):
    """The usual defaults: a connection belongs to its request's owner, never expires and is
    never revoked, so a subclass need only say who owns a request."""

    @abstractmethod
    def request_owner(self) -> str | None: ...

    def connection_grant(self, auth: Any) -> Grant | None:
        owner = self.request_owner()
        return None if owner is None else Grant(owner)

    def revoked(self, grants: Sequence[Grant]) -> Collection[str] | None:
        return set()


def _need(module: str, adapter: str, package: str) -> None:
    """Fail when the host builds the adapter, saying what to install, not at the first request."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{adapter} needs {package}: pip install {package}") from None


class FlaskLoginIdentity(BaseIdentity):
    """Owners are Flask-Login users: ``current_user.get_id()``.

    Socket.IO connects and SSE requests carry the session cookie, so the base class's grant is
    right for them: it lasts as long as the connection, since a session has no expiry to watch.
    """

    def __init__(self) -> None:
        _need("flask_login", "FlaskLoginIdentity", "Flask-Login")

    def request_owner(self) -> str | None:
        from flask_login import current_user

        # Without it Flask-Login raises AttributeError, which would read as "not logged in".
        if has_request_context() and not hasattr(current_app, "login_manager"):
            raise ConfigError("FlaskLoginIdentity needs Flask-Login's LoginManager on the app")
        if not getattr(current_user, "is_authenticated", False):
            return None
        return owner_str(current_user.get_id())


class JWTIdentity(BaseIdentity):
    """Owners are Flask-JWT-Extended identities: the access token's identity claim.

    A request goes through ``verify_jwt_in_request``, so the app's own blocklist and user loaders
    apply; the 401s say why in the words of jobcast's service. A connection's token (in the
    Socket.IO auth payload, where Flask-JWT-Extended does not look, or a Bearer header) is decoded
    here and checked with the ``revoked`` hook, which gets the kept claims (``jti``, ``fam``, the
    identity claim, ``iat``, ``exp``) of each token and returns the jtis revoked, or None when it
    cannot tell now. Flask-JWT-Extended has no public way to ask its blocklist loader about a
    token outside a request, so without the hook a connection lasts until its token expires.
    A hook that cannot tell at connect time lets the connection in; the next check decides.
    """

    def __init__(self, *, revoked: RevokedHook | None = None) -> None:
        _need("flask_jwt_extended", "JWTIdentity", "Flask-JWT-Extended")
        self._revoked = revoked

    def request_owner(self) -> str | None:
        from flask_jwt_extended import get_jwt_identity, verify_jwt_in_request
        from flask_jwt_extended.exceptions import JWTExtendedException
        from jwt.exceptions import PyJWTError

        try:
            if verify_jwt_in_request() is None:
                return None  # a method JWT_EXEMPT_METHODS lets through (OPTIONS)
        except (JWTExtendedException, PyJWTError) as exc:
            raise _refused(_why(exc)) from None
        return _token_owner(get_jwt_identity())

    def connection_grant(self, auth: Any) -> Grant | None:
        from flask_jwt_extended import decode_token
        from flask_jwt_extended.exceptions import JWTExtendedException
        from jwt.exceptions import ExpiredSignatureError, PyJWTError

        token = _presented_token(auth)
        if token is None:
            raise _refused("an access token is required")
        try:
            claims = decode_token(token)
        except ExpiredSignatureError:
            raise _refused("token expired") from None
        except (PyJWTError, JWTExtendedException):
            raise _refused("invalid token") from None
        if claims.get("type") != "access":
            raise _refused("an access token is required")
        key = current_app.config.get("JWT_IDENTITY_CLAIM", "sub")
        exp = claims.get("exp")
        grant = Grant(
            owner=_token_owner(claims[key]),
            expires_at=None if exp is None else float(exp),
            token_id=claims.get("jti"),
            claims={name: claims.get(name) for name in ("jti", "fam", key, "iat", "exp")},
        )
        if self._revoked is not None and grant.token_id in (self._revoked([grant.claims]) or ()):
            raise _refused("token revoked")
        return grant

    def revoked(self, grants: Sequence[Grant]) -> Collection[str] | None:
        if self._revoked is None:
            return set()
        return self._revoked([grant.claims for grant in grants])


def _refused(detail: str) -> Unauthorized:
    """The 401 of every token problem, with the challenge RFC 6750 asks for."""
    return Unauthorized(detail, headers={"WWW-Authenticate": "Bearer"})


def _why(exc: Exception) -> str:
    """The detail of a refused request token, as jobcast's service words it."""
    from flask_jwt_extended import exceptions as fje
    from jwt.exceptions import ExpiredSignatureError, PyJWTError

    if isinstance(exc, fje.NoAuthorizationError | fje.CSRFError):
        return str(exc)
    if isinstance(exc, ExpiredSignatureError):
        return "token expired"
    if isinstance(exc, fje.RevokedTokenError):
        return "token revoked"
    if isinstance(exc, fje.UserLookupError):
        return "unknown user"
    invalid = (
        PyJWTError,
        fje.JWTDecodeError,
        fje.WrongTokenError,
        fje.InvalidHeaderError,
        fje.InvalidQueryParamError,
    )
    return f"invalid token: {exc}" if isinstance(exc, invalid) else "token rejected"


def _token_owner(value: object) -> str:
    """A signed token naming no usable owner is the token's fault: a 401, not a 500."""
    try:
        return owner_str(value)
    except ValueError as exc:
        raise _refused(f"invalid token: {exc}") from None


def _presented_token(auth: Any) -> str | None:
    """A connection's token: ``auth={"token": ...}`` from Socket.IO, else a Bearer header."""
    given = auth.get("token") if isinstance(auth, Mapping) else None
    if isinstance(given, str) and given:
        return given
    if has_request_context():
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


class CallableIdentity(BaseIdentity):
    """Owners from the host's own functions: ``http()`` for a request, ``socket(auth)`` for a
    connection (``http()`` when not given); each returns an id or None."""

    def __init__(
        self,
        http: Callable[[], object | None],
        socket: Callable[[Any], object | None] | None = None,
    ) -> None:
        self._http = http
        self._socket = socket

    def request_owner(self) -> str | None:
        owner = self._http()
        return None if owner is None else owner_str(owner)

    def connection_grant(self, auth: Any) -> Grant | None:
        if self._socket is None:
            return super().connection_grant(auth)
        owner = self._socket(auth)
        return None if owner is None else Grant(owner_str(owner))
