"""The dashboard's pages. Views only render shells; everything a user owns is read by the
browser through the API with the user's own token, so no page can show another user's jobs."""

from __future__ import annotations

from flask import Blueprint, render_template

# Served under /assets: the app's own /static route (Flask adds one even without a folder)
# would shadow a blueprint's /static.
bp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)


@bp.get("/")
def dashboard() -> str:
    return render_template("dashboard.html")


@bp.get("/admin")
def admin() -> str:
    """The same shell for everyone: the admin API it calls answers 404 to non-admins."""
    return render_template("admin.html")


@bp.get("/signin")
def signin() -> str:
    return render_template("auth.html", mode="signin")


@bp.get("/signup")
def signup() -> str:
    return render_template("auth.html", mode="signup")
