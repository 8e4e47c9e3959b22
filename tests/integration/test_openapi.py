"""The OpenAPI document: a valid OpenAPI 3.1 document that covers every route the server has,
every error it can answer as a problem document, and answers that fit its schemas; and the
interactive page that shows it, served from this server under the app's CSP.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, get_args

import pytest
import requests
from flask import Flask
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator

from jobcast import errors
from jobcast.api import http
from jobcast.api.openapi.components import PROBLEM_SLUGS
from jobcast.api.schemas import STREAM_EVENTS, JobEventName, JobStatus, SignOutEventName
from jobcast.jobs import states
from jobcast.service.auth import users
from tests.integration.conftest import Stack
from tests.integration.support import Api

SPEC_URL = "/api/v1/openapi.json"
METHODS = ("get", "put", "post", "delete", "patch")
PROBLEM = {"$ref": "#/components/schemas/Problem"}


@pytest.fixture(scope="module")
def spec(stack: Stack) -> dict[str, Any]:
    """The document as the running server publishes it, fetched without a token."""
    response = requests.get(stack.base_url + SPEC_URL, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, section, name = node["$ref"].split("/")
        node = spec["components"][section][name]
    return node


def validator(spec: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for ``schema`` whose ``#/components/...`` refs resolve in ``spec``."""
    return Draft202012Validator({**schema, "components": spec["components"]})


def assert_fits(spec: dict[str, Any], operation_id: str, response: requests.Response) -> None:
    """The response's status is documented for the operation and its body fits the schema."""
    op = next(op for _, _, op in operations(spec) if op["operationId"] == operation_id)
    assert str(response.status_code) in op["responses"], (operation_id, response.status_code)
    documented = resolve(spec, op["responses"][str(response.status_code)])
    media_type = response.headers["Content-Type"].split(";")[0]
    schema = documented["content"][media_type]["schema"]
    errors_found = [e.message for e in validator(spec, schema).iter_errors(response.json())]
    assert not errors_found, (operation_id, response.status_code, errors_found)
    for name, header in documented.get("headers", {}).items():
        if resolve(spec, header).get("required"):
            assert name in response.headers, (operation_id, name)


def assert_events_fit(spec: dict[str, Any], response: requests.Response) -> None:
    """Each event of a finished job's stream fits the documented event, and its data the
    documented payload."""
    assert response.status_code == 200
    op = spec["paths"]["/api/v1/jobs/{job_id}/events"]["get"]
    envelope = op["responses"]["200"]["content"]["text/event-stream"]["schema"]
    events = [
        dict(line.split(": ", 1) for line in block.splitlines())
        for block in response.text.split("\n\n")
        if block.startswith("id: ")
    ]
    assert [e["event"] for e in events][-1] == "job.succeeded"
    for event in events:
        assert not list(validator(spec, envelope).iter_errors(event)), event
        (branch,) = [
            b for b in envelope["oneOf"] if event["event"] in b["properties"]["event"]["enum"]
        ]
        payload = json.loads(event["data"])
        data_schema = branch["properties"]["data"]["contentSchema"]
        assert not list(validator(spec, data_schema).iter_errors(payload)), event


# --- the document -----------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(spec).validate()


def test_every_route_of_the_api_and_the_probes_is_documented_with_its_methods(
    spec: dict[str, Any], server_app: Flask
) -> None:
    served: set[tuple[str, str]] = set()
    for rule in server_app.url_map.iter_rules():
        if not (rule.rule.startswith("/api/v1/") or rule.rule in ("/healthz", "/readyz")):
            continue
        if rule.endpoint == "jobcast.unknown":  # the catch-all that answers 404/405 there
            continue
        path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            served.add((path, method.lower()))
    documented = {(path, method) for path, method, _ in operations(spec)}
    assert served == documented
    assert len(served) >= 15


def test_operation_ids_are_unique(spec: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(spec)]
    assert len(ids) == len(set(ids))


def test_every_documented_error_is_a_problem_document(spec: dict[str, Any]) -> None:
    for path, method, op in operations(spec):
        for status, response in op["responses"].items():
            if int(status) < 400 or (path, status) == ("/readyz", "503"):
                continue  # /readyz says which check failed in its own document
            if status == "414":
                assert response == {"$ref": "#/components/responses/UriTooLong"}
                continue  # gunicorn's own answer, before the app (see components.py)
            content = resolve(spec, response)["content"]
            assert content == {"application/problem+json": {"schema": PROBLEM}}, (
                method,
                path,
                status,
            )


def test_operations_behind_a_token_declare_it_and_their_401(spec: dict[str, Any]) -> None:
    open_operations = {"register", "login", "healthz", "readyz", "getOpenApi"}
    for path, method, op in operations(spec):
        if op["operationId"] in open_operations:
            assert op["security"] == [], op["operationId"]
            continue
        assert op["security"], (method, path)
        assert "401" in op["responses"], (method, path)
    download = spec["paths"]["/api/v1/jobs/{job_id}/result"]["get"]
    assert download["security"] == [{"accessToken": []}, {"downloadLink": []}]
    assert spec["components"]["securitySchemes"]["downloadLink"]["name"] == "token"


def test_body_endpoints_document_every_way_a_body_is_refused(spec: dict[str, Any]) -> None:
    for path, method, op in operations(spec):
        if "requestBody" in op:
            assert {"400", "413", "415", "422"} <= set(op["responses"]), (method, path)


def test_headers_the_contract_names_are_documented(spec: dict[str, Any]) -> None:
    submit = spec["paths"]["/api/v1/jobs"]["post"]
    events = spec["paths"]["/api/v1/jobs/{job_id}/events"]["get"]
    names = {resolve(spec, p)["name"] for p in submit["parameters"]}
    assert {"Idempotency-Key", "X-Request-ID"} <= names
    assert "Last-Event-ID" in {resolve(spec, p)["name"] for p in events["parameters"]}
    assert set(submit["responses"]["202"]["headers"]) >= {"Location", "X-Request-ID"}
    assert "Idempotent-Replayed" in submit["responses"]["200"]["headers"]
    assert list(events["responses"]["200"]["content"]) == ["text/event-stream"]
    assert "Retry-After" in spec["components"]["responses"]["TooManyRequests"]["headers"]


def test_the_submission_body_is_a_union_over_the_registered_job_types(
    spec: dict[str, Any], stack: Stack
) -> None:
    """One variant per type the server runs, chosen by ``type``, whose params are the schema
    GET /api/v1/job-types publishes for that type."""
    published = stack.api().signup().get("/api/v1/job-types").json()["items"]
    submission = spec["components"]["schemas"]["JobSubmission"]
    mapping = submission["discriminator"]["mapping"]
    assert submission["discriminator"]["propertyName"] == "type"
    assert set(mapping) == {item["type"] for item in published}
    for item in published:
        variant = resolve(spec, {"$ref": mapping[item["type"]]})
        assert variant["properties"]["type"]["const"] == item["type"]
        params = resolve(spec, variant["properties"]["params"]["anyOf"][0])
        assert params.get("properties", {}) == item["params_schema"].get("properties", {})
        assert params.get("required") == item["params_schema"].get("required")


def test_the_job_status_and_event_enums_are_every_state_and_event() -> None:
    assert set(get_args(JobStatus)) == states.ALL
    events = set(states.EVENT_FOR_STATE.values()) | {"job.progress", "job.output"}
    assert set(get_args(JobEventName)) == events
    assert set(STREAM_EVENTS) == events | set(get_args(SignOutEventName))


def test_the_problem_slugs_listed_are_every_kind_of_error() -> None:
    def subclasses(cls: type[errors.ApiError]) -> Iterator[type[errors.ApiError]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    assert users.BadCredentials in set(subclasses(errors.ApiError))
    raised = {cls.slug for cls in subclasses(errors.ApiError)} | {errors.ApiError.slug}
    assert raised | set(http._HTTP_SLUGS.values()) == set(PROBLEM_SLUGS)


# --- the server answers as documented ---------------------------------------------------------


def test_answers_fit_the_documented_schemas(spec: dict[str, Any], stack: Stack) -> None:
    anonymous = stack.api()
    api = anonymous.signup()
    assert_fits(spec, "healthz", anonymous.get("/healthz"))
    assert_fits(spec, "readyz", anonymous.get("/readyz"))
    assert_fits(spec, "getMe", api.get("/api/v1/me"))
    assert_fits(spec, "getMyUsage", api.get("/api/v1/me/usage"))
    assert_fits(spec, "listJobTypes", api.get("/api/v1/job-types"))
    submitted = api.post(
        "/api/v1/jobs",
        json={"type": "demo.steps", "params": {"steps": 1, "step_ms": 0}},
        headers={"Idempotency-Key": "openapi-fits"},
    )
    assert_fits(spec, "submitJob", submitted)
    replayed = api.post(
        "/api/v1/jobs",
        json={"type": "demo.steps", "params": {"steps": 1, "step_ms": 0}},
        headers={"Idempotency-Key": "openapi-fits"},
    )
    assert_fits(spec, "submitJob", replayed)
    job_id = submitted.json()["id"]
    api.wait_job(job_id)
    assert_fits(spec, "getJob", api.get(f"/api/v1/jobs/{job_id}"))
    assert_events_fit(spec, api.get(f"/api/v1/jobs/{job_id}/events"))
    assert_fits(spec, "listJobs", api.get("/api/v1/jobs?limit=1"))
    assert_fits(spec, "cancelJob", api.post(f"/api/v1/jobs/{job_id}/cancel"))  # 409
    assert_fits(spec, "getJob", api.get("/api/v1/jobs/not-a-uuid"))  # 404
    assert_fits(spec, "listJobs", api.get("/api/v1/jobs?limit=0"))  # 422
    assert_fits(spec, "submitJob", api.post("/api/v1/jobs", data="{"))  # 415
    assert_fits(spec, "getMe", anonymous.get("/api/v1/me"))  # 401
    assert_fits(spec, "getMyUsage", anonymous.get("/api/v1/me/usage"))  # 401
    login = anonymous.post(
        "/api/v1/auth/login", json={"email": api.email, "password": "correct horse battery"}
    )
    assert_fits(spec, "login", login)
    assert_fits(spec, "refresh", api.post("/api/v1/auth/refresh"))  # 401: access token
    assert_fits(spec, "register", anonymous.post("/api/v1/auth/register", json={}))  # 422


def test_a_last_event_id_past_any_seq_ends_the_stream_cleanly(api: Api) -> None:
    """The document promises any Last-Event-ID is taken: past the last seq, a finished job's
    stream has no events and ends."""
    job = api.submit("demo.steps", {"steps": 1, "step_ms": 0})
    api.wait_job(job["id"])
    response = api.get(f"/api/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": str(2**64)})
    assert response.status_code == 200
    assert "event:" not in response.text


def test_the_document_and_the_page_need_no_token(stack: Stack) -> None:
    page = requests.get(stack.base_url + "/api/docs", timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "<script>" not in page.text  # no inline script: each one has a src
    for asset in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert asset.startswith("/"), asset  # nothing from another origin
        assert requests.get(stack.base_url + asset, timeout=30).status_code == 200, asset


# --- the page in a browser --------------------------------------------------------------------

CSP_RECORDER = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


def test_the_docs_page_works_under_the_csp_and_can_call_the_api(
    stack: Stack, browser: Any, spec: dict[str, Any]
) -> None:
    """Swagger UI renders every operation and runs "Try it out" with a token, while the app's
    CSP (no inline script, no inline style) is in force, and loads nothing from elsewhere."""
    from playwright.sync_api import expect

    api = stack.api().signup()
    foreign: list[str] = []
    context = browser.new_context()
    try:
        page = context.new_page()
        page.add_init_script(CSP_RECORDER)
        page.on(
            "request",
            lambda r: None if r.url.startswith(stack.base_url) else foreign.append(r.url),
        )
        page.goto(stack.base_url + "/api/docs")
        count = len(list(operations(spec)))
        expect(page.locator(".opblock")).to_have_count(count, timeout=20_000)

        page.get_by_role("button", name="Authorize").first.click()
        access = page.locator(".modal-ux .auth-container").first  # accessToken
        access.locator("input").fill(api.token or "")
        access.get_by_role("button", name="Apply credentials").click()
        page.locator(".modal-ux .close-modal").click()

        me = page.locator("#operations-auth-getMe")
        me.locator(".opblock-summary").click()
        me.get_by_role("button", name="Try it out").click()
        me.get_by_role("button", name="Execute").click()
        status = me.locator(".live-responses-table tr.response .response-col_status")
        expect(status).to_have_text("200", timeout=20_000)
        expect(me.locator(".live-responses-table")).to_contain_text(api.email or "")

        assert page.evaluate("window.__violations") == []
    finally:
        context.close()
    assert foreign == []
