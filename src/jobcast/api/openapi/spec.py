"""The OpenAPI 3.1 document of an app, built from its URL map and its pydantic models.

Paths and methods come from the URL map (a route without ``@operation`` is left out, and the
coverage test fails); every schema comes from pydantic, from the very models the views validate
with and the response models of ``jobcast.api.schemas``, in one ``models_json_schema`` pass so a
model used twice is one component. The job submission body is a union over the job types the
app registered, told apart by ``type``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any, Literal, Union

from flask import Flask
from pydantic import BaseModel, Field, RootModel, create_model
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from jobcast.api.openapi import components
from jobcast.api.openapi.describe import JOB_SUBMISSION, Operation, Reply, operation_of
from jobcast.api.schemas import Problem
from jobcast.errors import PROBLEM_BASE
from jobcast.jobs.registry import Registry

SCHEMAS = "#/components/schemas/"
#: The ``$ref`` of a model's component schema.
Ref = Callable[[type[BaseModel], JsonSchemaMode], dict[str, Any]]
_ARGUMENT = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")
_IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})


def build_spec(app: Flask, registry: Registry, sign_in: str = "") -> dict[str, Any]:
    """The OpenAPI document of every documented route of ``app`` (in a host app, jobcast's
    own); ``sign_in`` tells how a client gets its credentials there."""
    routes = sorted(_documented_routes(app))
    models: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(Problem, "serialization"): None}
    submission = _submission_model(registry)
    for _path, _method, op, _doc in routes:
        for model, mode in _models_of(op, submission):
            models[(model, mode)] = None
    refs, definitions = models_json_schema(list(models), ref_template=SCHEMAS + "{model}")

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return refs[(model, mode)]

    paths: dict[str, dict[str, Any]] = {}
    for path, method, op, description in routes:
        item = paths.setdefault(path, {})
        if "{" in path:
            item["parameters"] = _path_parameters(path)
        item[method.lower()] = _operation(op, description, "{" in path, submission, ref)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jobcast API",
            "version": _version(),
            "description": _DESCRIPTION.format(sign_in=sign_in or _SIGN_IN),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": components.TAGS,
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "responses": components.error_responses(ref(Problem, "serialization")),
            "parameters": components.PARAMETERS,
            "headers": components.HEADERS,
            "securitySchemes": components.SECURITY_SCHEMES,
        },
    }


def _documented_routes(app: Flask) -> Iterator[tuple[str, str, Operation, str | None]]:
    """(path, method, operation, the view's docstring) for every documented route."""
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        op = operation_of(view)
        if op is None:
            continue
        for method in sorted((rule.methods or set()) - _IGNORED_METHODS):
            yield _ARGUMENT.sub(r"{\1}", rule.rule), method, op, inspect.getdoc(view)


def _path_parameters(path: str) -> list[dict[str, str]]:
    names = re.findall(r"{([^{}]+)}", path)
    missing = [name for name in names if name not in components.PARAMETERS]
    if missing:
        raise LookupError(f"path {path} has undocumented parameters {missing}")
    return [_parameter(name) for name in names]


def _models_of(
    op: Operation, submission: type[BaseModel]
) -> Iterator[tuple[type[BaseModel], JsonSchemaMode]]:
    if isinstance(op.body, type):
        yield op.body, "validation"
    elif op.body == JOB_SUBMISSION:
        yield submission, "validation"
    for reply in op.replies.values():
        for model in (reply.model, *reply.events.values()):
            if model is not None:
                yield model, "serialization"


def _operation(
    op: Operation,
    description: str | None,
    has_path_parameters: bool,
    submission: type[BaseModel],
    ref: Ref,
) -> dict[str, Any]:
    described: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        **({"description": description} if description else {}),
        "tags": [op.tag],
        "security": components.SECURITY[op.auth],
        "parameters": [_parameter("X-Request-ID")]
        + [_parameter(name) for name in op.headers]
        + (_query_parameters(op.query) if op.query else []),
        "responses": {},
    }
    if op.body is not None:
        model = submission if op.body == JOB_SUBMISSION else op.body
        assert isinstance(model, type)
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(model, "validation")}},
        }
    rate_headers = components.RATE_LIMIT_HEADERS if op.rate_limited else ()
    for status, reply in sorted(op.replies.items()):
        described["responses"][str(status)] = _reply(reply, rate_headers, ref)
    for status in sorted(_error_statuses(op)):
        described["responses"].setdefault(str(status), components.error_ref(status))
    if op.query is not None or has_path_parameters:
        described["responses"]["414"] = {"$ref": "#/components/responses/UriTooLong"}
    described["responses"] = dict(sorted(described["responses"].items()))
    return described


def _error_statuses(op: Operation) -> set[int]:
    statuses = {500, *op.errors}
    if op.auth in ("access", "refresh", "download"):
        statuses.add(401)
    if op.body is not None:
        statuses |= {400, 413, 415, 422}
    if op.query is not None:
        statuses.add(422)
    if op.rate_limited:
        statuses.add(429)
    if op.backed:
        statuses.add(503)
    return statuses


def _reply(reply: Reply, extra_headers: tuple[str, ...], ref: Ref) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": reply.description,
        "headers": {
            name: {"$ref": f"#/components/headers/{name}"}
            for name in ("X-Request-ID", *reply.headers, *extra_headers)
        },
    }
    if reply.events:
        answer["content"] = {reply.media_type: {"schema": _stream_event(reply.events, ref)}}
    elif reply.model is not None:
        answer["content"] = {reply.media_type: {"schema": ref(reply.model, "serialization")}}
    elif reply.schema is not None:
        answer["content"] = {reply.media_type: {"schema": dict(reply.schema)}}
    elif reply.media_type != "application/json":
        answer["content"] = {reply.media_type: {}}
    if reply.links:
        answer["links"] = {name: dict(link) for name, link in reply.links.items()}
    return answer


def _stream_event(events: Mapping[str, type[BaseModel]], ref: Ref) -> dict[str, Any]:
    """One event of a text/event-stream answer, as OpenAPI 3.2's ``itemSchema`` would say it
    (and as schemathesis reads a 3.1 ``schema`` of this media type): one branch per data model,
    each with the event names that carry it."""
    names: dict[type[BaseModel], list[str]] = {}
    for name, model in events.items():
        names.setdefault(model, []).append(name)
    return {
        "description": "One event; `: keep-alive` comments and the `retry` line are not events.",
        "oneOf": [
            {
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "id": {
                        "type": "string",
                        "pattern": "^[0-9]+-[1-9][0-9]*$",
                        "description": "<epoch>-<seq>",
                    },
                    "event": {"type": "string", "enum": named},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": ref(model, "serialization"),
                    },
                    "retry": {"type": "integer"},
                },
            }
            for model, named in names.items()
        ],
    }


def _parameter(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/parameters/{name}"}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One parameter per field of a flat query model; ``X | None`` loses its null branch, as
    a query string cannot say null."""
    schema = model.model_json_schema(mode="validation")
    if "$defs" in schema:
        raise TypeError(f"query model {model.__name__} must be flat (no nested models)")
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        branches = [b for b in prop.pop("anyOf", []) if b.get("type") != "null"]
        if len(branches) == 1:
            prop.update(branches[0])
        elif branches:
            prop["anyOf"] = branches
        if prop.get("default", ...) is None:
            del prop["default"]
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _submission_model(registry: Registry) -> type[BaseModel]:
    """``{"type": <name>, "params": <that type's params or null>}``, one variant per job type."""
    variants: list[type[BaseModel]] = []
    taken: set[str] = set()
    for job_type in registry:
        name = "".join(p.capitalize() for p in re.split(r"[^A-Za-z0-9]+", job_type.name)) + "Job"
        while name in taken:
            name += "_"
        taken.add(name)
        variants.append(
            create_model(
                name,
                __doc__=f"{job_type.title} ({job_type.name}). Other members are ignored.",
                type=(Literal[job_type.name], Field(description="The job type.")),
                params=(
                    job_type.params | None,
                    Field(default=None, description="Omitted or null means {}: all defaults."),
                ),
            )
        )
    if not variants:
        return create_model(JOB_SUBMISSION, type=(str, ...), params=(dict[str, Any] | None, None))
    choice: Any = variants[0]
    if len(variants) > 1:
        choice = Annotated[Union[tuple(variants)], Field(discriminator="type")]  # noqa: UP007
    return type(
        JOB_SUBMISSION,
        (RootModel[choice],),
        {"__doc__": "A job to run: `type` chooses the job type and so the shape of `params`."},
    )


def _version() -> str:
    try:
        return version("jobcast")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"


_SIGN_IN = "Requests carry the credentials the app signs its users in with."
_SLUGS = ", ".join(f"`{slug}`" for slug in components.PROBLEM_SLUGS)
_DESCRIPTION = f"""Background jobs with live progress. The written contract, with the
Socket.IO events this document cannot describe, is `docs/api.md`.

{{sign_in}} Every error is an RFC 9457 problem document (`application/problem+json`) whose
`type` is `{PROBLEM_BASE}<slug>`, one slug per kind of error: {_SLUGS}."""
