"""The job core imports without Flask: job authors' modules and tools can use it anywhere."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE = [
    "jobcast.jobs.states",
    "jobcast.jobs.registry",
    "jobcast.jobs.context",
    "jobcast.jobs.events",
    "jobcast.errors",
]


@pytest.mark.parametrize("module", CORE)
def test_a_core_module_loads_no_flask(module: str) -> None:
    probe = (
        f"import sys, {module}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]", f"{module} loaded {loaded}"


def test_the_package_names_its_api_without_importing_it() -> None:
    probe = "import sys, jobcast; print('flask' in sys.modules, 'Jobcast' in jobcast.__all__)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
