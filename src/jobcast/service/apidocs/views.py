"""GET /api/docs: Swagger UI, served from here, over the API's ``openapi.json``."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint(
    "apidocs",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/api/docs/assets",
)


@bp.get("/api/docs")
def docs_page() -> str:
    return render_template("apidocs/index.html")
