"""The jobcast service: one app built on the extension (create_app, users and JWT, the
dashboard, built-in jobs, CLI, process supervision, serving tweaks).

Its libraries come with the ``service`` extra; without them, importing the service says so.
"""

import importlib

for _module in ("flask_sqlalchemy", "flask_jwt_extended", "flask_limiter", "argon2"):
    try:
        importlib.import_module(_module)
    except ImportError as exc:
        raise ImportError(
            f"the jobcast service needs its extra ({exc.name} is missing):"
            " pip install 'jobcast[service]'"
        ) from exc
