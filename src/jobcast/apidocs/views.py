"""GET /api/v1/openapi.json (the document) and GET /api/docs (Swagger UI, served from here)."""

from __future__ import annotations

import json

from flask import Blueprint, Flask, Response, current_app, render_template

from jobcast.apidocs.describe import Reply, operation
from jobcast.apidocs.spec import build_spec
from jobcast.runtime import runtime_of

bp = Blueprint(
    "apidocs",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/api/docs/assets",
)

_CACHE = "jobcast.openapi"


def openapi_document(app: Flask) -> bytes:
    """The app's OpenAPI document as JSON, built once: routes and job types are fixed at start."""
    cached: bytes | None = app.extensions.get(_CACHE)
    if cached is None:
        cached = json.dumps(build_spec(app, runtime_of(app).registry), indent=1).encode()
        app.extensions[_CACHE] = cached
    return cached


@bp.get("/api/v1/openapi.json")
@operation(
    summary="This OpenAPI document",
    tag="docs",
    operation_id="getOpenApi",
    auth="none",
    backed=False,
    replies={200: Reply("The OpenAPI 3.1 document of this server.", schema={"type": "object"})},
)
def openapi_json() -> Response:
    return Response(openapi_document(current_app), mimetype="application/json")


@bp.get("/api/docs")
def docs_page() -> str:
    return render_template("apidocs/index.html")
