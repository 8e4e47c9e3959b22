"""The shipped job types end to end: exports, report, email and user statistics.

Each test signs up a fresh user, seeds that user's orders straight into the stack's database,
runs the job through the web server and a real worker, and checks the result against the
database (read with plain queries, see ``data.py``).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import openpyxl
import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import select

from jobcast.service.builtin.models import ORDER_STATUSES, REGIONS, UserStats
from jobcast.service.procs import free_port
from tests.integration.conftest import Stack
from tests.integration.data import CSV_HEADER, OrderRow, StackData
from tests.integration.support import Api, assert_problem

EMAIL = {"to": "a@example.com", "subject": "s", "body": "b"}


@pytest.fixture(scope="module")
def data(server_app: Flask) -> StackData:
    return StackData(server_app)


def seeded(api: Api, data: StackData, rows: int = 600, seed: int = 20240501) -> int:
    """Seed ``rows`` orders for the user behind ``api``; returns the user's id."""
    user_id: int = api.get("/api/v1/me").json()["id"]
    data.seed(user_id, rows, seed=seed)
    return user_id


def run(api: Api, job_type: str, params: dict[str, Any], timeout: float = 90) -> dict[str, Any]:
    job = api.wait_job(api.submit(job_type, params)["id"], timeout=timeout)
    assert job["status"] == "succeeded", job
    return job


def download(api: Api, url: str) -> bytes:
    """The file behind a signed download URL, fetched without any Authorization header."""
    response = api.get(url, auth=False)
    assert response.status_code == 200, response.text
    assert "Authorization" not in response.request.headers
    return response.content


def total_of(orders: list[OrderRow]) -> int:
    return sum(o.total_cents for o in orders)


# --- exports --------------------------------------------------------------------------------


def test_csv_export_writes_exactly_the_filtered_orders(
    api: Api, data: StackData, listener_factory
) -> None:
    user_id = seeded(api, data)
    start = date.today() - timedelta(days=200)
    params = {"region": "north", "min_total_cents": 50_000, "created_from": start.isoformat()}
    listener = listener_factory(api.token)
    job = api.submit("export.csv", params)

    events = listener.wait_terminal(job["id"], timeout=90)
    name, final = events[-1]
    assert name == "job.succeeded", events
    result = final["result"]
    assert result["filename"] == "orders.csv" and result["content_type"] == "text/csv"
    progress = [p for n, p in events if n == "job.progress"]
    assert progress and progress[-1]["progress"] == 100
    assert progress[-1]["message"] == f"{result['rows']} of {result['rows']} rows"

    by_link = download(api, result["download_url"])
    by_bearer = api.get(f"/api/v1/jobs/{job['id']}/result")
    assert by_bearer.status_code == 200 and by_bearer.content == by_link
    assert by_bearer.headers["Content-Type"].startswith("text/csv")
    assert "orders.csv" in by_bearer.headers["Content-Disposition"]

    lines = list(csv.reader(io.StringIO(by_link.decode("utf-8"))))
    assert lines[0] == CSV_HEADER
    rows = lines[1:]
    since = datetime.combine(start, time(), UTC)
    expected = [
        o
        for o in data.orders(user_id)
        if o.region == "north" and o.total_cents >= 50_000 and o.created_at >= since
    ]
    assert 0 < len(rows) == len(expected) == result["rows"]
    for row in rows:
        assert row[3] == "north" and int(row[7]) >= 50_000
        assert datetime.fromisoformat(row[1]) >= since and row[1].endswith("Z")
    assert [_csv_order(row) for row in rows] == expected


def _csv_order(row: list[str]) -> OrderRow:
    return OrderRow(
        int(row[0]),
        datetime.fromisoformat(row[1]),
        row[2],
        row[3],
        row[4],
        int(row[5]),
        int(row[6]),
        int(row[7]),
        row[8],
    )


def test_csv_export_of_a_whole_day_and_a_limit(api: Api, data: StackData) -> None:
    user_id = seeded(api, data, rows=800, seed=7)
    orders = data.orders(user_id)
    day = Counter(o.created_at.date() for o in orders).most_common(1)[0][0]
    on_day = [o for o in orders if o.created_at.date() == day]

    job = run(api, "export.csv", {"created_from": day.isoformat(), "created_to": day.isoformat()})
    assert job["result"]["rows"] == len(on_day)

    job = run(api, "export.csv", {"status": "paid", "limit": 5})
    lines = list(csv.reader(io.StringIO(download(api, job["result"]["download_url"]).decode())))
    assert [int(r[0]) for r in lines[1:]] == [o.id for o in orders if o.status == "paid"][:5]


def test_xlsx_export_has_a_bold_header_and_the_orders(api: Api, data: StackData) -> None:
    user_id = seeded(api, data, rows=300, seed=3)
    job = run(api, "export.xlsx", {"status": "shipped"})
    assert job["result"]["filename"] == "orders.xlsx"

    content = download(api, job["result"]["download_url"])
    sheet = openpyxl.load_workbook(io.BytesIO(content))["Orders"]
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == CSV_HEADER and sheet["A1"].font.b
    expected = [o for o in data.orders(user_id) if o.status == "shipped"]
    assert 0 < len(rows) - 1 == len(expected) == job["result"]["rows"]
    for row, order in zip(rows[1:], expected, strict=True):
        _assert_row_is(row, order)


def _assert_row_is(row: tuple[Any, ...], order: Any) -> None:
    """A workbook row holds the order's values, its time to the millisecond."""
    assert row[0] == order.id and list(row[2:]) == [
        order.customer,
        order.region,
        order.product,
        order.quantity,
        order.unit_price_cents,
        order.total_cents,
        order.status,
    ]
    written = row[1].replace(tzinfo=UTC)  # Excel has no time zones; the export is UTC
    assert abs(written - order.created_at) < timedelta(milliseconds=1)


@pytest.fixture(scope="module")
def rust_xlsx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own whose cpu worker writes workbooks with rustpy-xlsxwriter."""
    pytest.importorskip("rustpy_xlsxwriter", reason="needs jobcast[fast-xlsx]")
    overrides = {"JOBCAST_XLSX_ENGINE": "rustpy-xlsxwriter"}
    running = Stack(
        tmp_path_factory.mktemp("rust-xlsx"), env_overrides=overrides, worker_pools=("cpu",)
    )
    with running:
        yield running


def test_the_rust_engine_writes_the_same_orders_as_the_csv_export(rust_xlsx: Stack) -> None:
    api = rust_xlsx.api().signup()
    user_id = api.get("/api/v1/me").json()["id"]
    StackData(rust_xlsx.app()).seed(user_id, 250, seed=11)

    job = run(api, "export.xlsx", {"region": "east"})
    sheet = openpyxl.load_workbook(io.BytesIO(download(api, job["result"]["download_url"])))
    rows = list(sheet["Orders"].iter_rows(values_only=True))
    assert list(rows[0]) == CSV_HEADER and sheet["Orders"]["A1"].font.b
    job = run(api, "export.csv", {"region": "east"})
    lines = list(csv.reader(io.StringIO(download(api, job["result"]["download_url"]).decode())))
    assert 0 < len(rows) - 1 == len(lines) - 1 == job["result"]["rows"]
    for row, line in zip(rows[1:], lines[1:], strict=True):
        order = _csv_order(line)
        _assert_row_is(row, order)


# --- report ---------------------------------------------------------------------------------


def test_report_totals_match_the_database(api: Api, data: StackData) -> None:
    user_id = seeded(api, data, rows=500, seed=5)
    job = run(api, "report.xlsx", {"min_total_cents": 10_000})
    assert job["result"]["filename"] == "orders-report.xlsx"
    content = download(api, job["result"]["download_url"])
    orders = [o for o in data.orders(user_id) if o.total_cents >= 10_000]

    assert "xl/charts/chart1.xml" in zipfile.ZipFile(io.BytesIO(content)).namelist()
    book = openpyxl.load_workbook(io.BytesIO(content), data_only=True)
    summary = list(book["Summary"].iter_rows(values_only=True))
    figures = {row[0]: row[1] for row in summary[:7] if row[0]}
    assert figures["Order count"] == len(orders) == job["result"]["orders"]
    assert figures["Revenue"] == pytest.approx(total_of(orders) / 100)
    assert figures["Average order"] == pytest.approx(total_of(orders) / len(orders) / 100, abs=0.01)

    by_region = _table(summary, "Region")
    for region in REGIONS:
        mine = [o for o in orders if o.region == region]
        assert by_region[region][:2] == (len(mine), pytest.approx(total_of(mine) / 100))
    assert by_region["Total"][:2] == (len(orders), pytest.approx(total_of(orders) / 100))
    by_status = _table(summary, "Status")
    assert {s: by_status[s][0] for s in ORDER_STATUSES} == Counter(o.status for o in orders)

    monthly = _table(list(book["Monthly"].iter_rows(values_only=True)), "Month")
    assert monthly.pop("Total")[0] == len(orders)
    per_month = Counter(o.created_at.strftime("%Y-%m") for o in orders)
    assert {m.strftime("%Y-%m"): v[0] for m, v in monthly.items() if v[0]} == per_month


def _table(rows: list[tuple[Any, ...]], heading: str) -> dict[Any, tuple[Any, ...]]:
    """The rows of the table headed ``heading``, by label, up to and including ``Total``."""
    top = next(i for i, row in enumerate(rows) if row[0] == heading)
    table: dict[Any, tuple[Any, ...]] = {}
    for row in rows[top + 1 :]:
        table[row[0]] = row[1:4]
        if row[0] == "Total":
            return table
    raise AssertionError(f"table {heading} has no Total row")


# --- users.process --------------------------------------------------------------------------


def test_users_process_saves_and_returns_the_users_statistics(api: Api, data: StackData) -> None:
    user_id = seeded(api, data, rows=400, seed=9)
    orders = data.orders(user_id)
    job = run(api, "users.process", {})

    def totals(key: str, value: str) -> dict[str, int]:
        mine = [o for o in orders if getattr(o, key) == value]
        return {"count": len(mine), "total_cents": total_of(mine)}

    expected = {
        "order_count": len(orders),
        "total_cents": total_of(orders),
        "average_cents": round(total_of(orders) / len(orders)),
        "by_status": {s: totals("status", s) for s in ORDER_STATUSES},
        "by_region": {r: totals("region", r) for r in REGIONS},
    }
    assert job["result"] == expected
    with data.session() as session:
        saved = session.scalars(select(UserStats).where(UserStats.user_id == user_id)).one()
        assert (saved.order_count, saved.total_cents, saved.average_cents) == (
            len(orders),
            total_of(orders),
            expected["average_cents"],
        )
        assert saved.by_status == expected["by_status"]
        assert saved.by_region == expected["by_region"]

    data.seed(user_id, 10, seed=10)  # a second run updates the same row
    assert run(api, "users.process", {})["result"]["order_count"] == len(orders) + 10


# --- email ----------------------------------------------------------------------------------


def test_email_is_delivered_with_a_message_id_and_the_job_id(api: Api, smtp) -> None:
    _port, inbox = smtp
    body = "Your export is ready.\nCafé au lait, deux fois.\n"
    params = {"to": "reader@example.com", "subject": "Export ready", "body": body}
    job = run(api, "email.send", params)

    received = [m for m in inbox.messages if m["X-Jobcast-Job"] == job["id"]]
    assert len(received) == 1
    message = received[0]
    assert message["To"] == "reader@example.com" and message["Subject"] == "Export ready"
    assert message["Message-ID"] == job["result"]["message_id"]
    assert job["result"]["to"] == "reader@example.com"
    payload = message.get_payload(decode=True).decode(message.get_content_charset())
    assert payload.replace("\r\n", "\n") == body


@pytest.fixture(scope="module")
def own_smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, int]]:
    """A stack of its own (Redis, database, web, io worker) and the SMTP port it sends to,
    where nothing listens unless a test starts a server there."""
    port = free_port()
    overrides = {
        "JOBCAST_SMTP_PORT": str(port),
        "JOBCAST_SMTP_TIMEOUT": "2",
        "JOBCAST_EMAIL_RECIPIENTS": "example.com",
    }
    with Stack(
        tmp_path_factory.mktemp("own-smtp"), env_overrides=overrides, worker_pools=("io",)
    ) as running:
        yield running, port


def test_email_to_an_unreachable_server_is_retried_then_fails(
    own_smtp: tuple[Stack, int],
) -> None:
    stack, _port = own_smtp
    api = stack.api().signup()
    listener = stack.listen(api.token)
    try:
        job = api.submit("email.send", EMAIL)
        events = listener.wait_terminal(job["id"], timeout=120)
    finally:
        listener.close()
    names = [name for name, _ in events]
    assert names.count("job.retrying") == 3 and names[-1] == "job.failed"
    retrying = [p for n, p in events if n == "job.retrying"]
    assert [p["attempt"] for p in retrying] == [1, 2, 3]
    assert all(p["error"]["type"] == "smtp_unavailable" for p in retrying)
    error = events[-1][1]["error"]
    assert error["type"] == "smtp_unavailable" and "could not reach" in error["message"]
    assert api.get(f"/api/v1/jobs/{job['id']}").json()["attempts"] == 4


class _Choosy:
    """An SMTP server that refuses ``unknown@`` for good (550) and ``busy@`` once (451)."""

    def __init__(self) -> None:
        self.delivered: list[str] = []
        self._deferred: set[str] = set()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("unknown@"):
            return f"550 5.1.1 <{address}>: no such user"
        if address.startswith("busy@") and address not in self._deferred:
            self._deferred.add(address)
            return "451 4.3.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.delivered.extend(envelope.rcpt_tos)
        return "250 OK"


def test_a_5xx_reply_fails_at_once_and_a_4xx_reply_is_retried(
    own_smtp: tuple[Stack, int],
) -> None:
    stack, port = own_smtp
    server = _Choosy()
    controller = Controller(server, hostname="127.0.0.1", port=port)
    api = stack.api().signup()

    def send_to(address: str) -> dict[str, Any]:
        return api.wait_job(api.submit("email.send", {**EMAIL, "to": address})["id"])

    controller.start()
    try:
        refused = send_to("unknown@example.com")
        assert refused["status"] == "failed" and refused["attempts"] == 1
        assert refused["error"]["type"] == "smtp_rejected"
        assert "unknown@example.com" in refused["error"]["message"]
        assert "550" in refused["error"]["message"]

        deferred = send_to("busy@example.com")
        assert deferred["status"] == "succeeded" and deferred["attempts"] == 2
        assert server.delivered == ["busy@example.com"]
    finally:
        controller.stop()


# --- who may download -----------------------------------------------------------------------


def test_only_the_owner_downloads_and_a_link_opens_only_its_own_job(
    stack: Stack, data: StackData
) -> None:
    alice, bob = stack.api().signup(), stack.api().signup()
    seeded(alice, data, rows=50, seed=1)
    seeded(bob, data, rows=50, seed=2)
    a = run(alice, "export.csv", {})
    b = run(bob, "export.csv", {})

    assert_problem(bob.get(f"/api/v1/jobs/{a['id']}/result"), 404)
    assert_problem(alice.get(f"/api/v1/jobs/{a['id']}/result", auth=False), 401)
    token = parse_qs(urlsplit(a["result"]["download_url"]).query)["token"][0]
    for job_id in (b["id"], run(alice, "export.csv", {"limit": 1})["id"]):
        response = bob.get(f"/api/v1/jobs/{job_id}/result", params={"token": token}, auth=False)
        assert_problem(response, 401)
    assert download(bob, b["result"]["download_url"]).startswith(b"id,created_at")


# --- bad params -----------------------------------------------------------------------------

BACKWARDS = {"created_from": "2024-02-01", "created_to": "2024-01-31"}


@pytest.mark.parametrize(
    ("job_type", "params", "field"),
    [
        ("export.csv", {"colour": "red"}, "params.colour"),
        ("export.csv", {"region": "mars"}, "params.region"),
        ("export.xlsx", {"status": "lost"}, "params.status"),
        ("export.csv", BACKWARDS, "params.created_to"),
        ("export.csv", {**BACKWARDS, "created_to": "2024-01-31T23:59:59Z"}, "params.created_to"),
        ("export.csv", {"created_from": "2024-02-30"}, "params.created_from"),
        ("export.csv", {"min_total_cents": -1}, "params.min_total_cents"),
        ("export.xlsx", {"limit": 0}, "params.limit"),
        ("export.csv", {"limit": 5_000_001}, "params.limit"),
        ("report.xlsx", {"limit": 10}, "params.limit"),
        ("users.process", {"user_id": 1}, "params.user_id"),
        ("email.send", {**EMAIL, "to": "nobody"}, "params.to"),
        ("email.send", {**EMAIL, "subject": "a\r\nBcc: x@example.com"}, "params.subject"),
        ("email.send", {**EMAIL, "subject": ""}, "params.subject"),
        ("email.send", {**EMAIL, "subject": "s" * 201}, "params.subject"),
        ("email.send", {**EMAIL, "body": ""}, "params.body"),
        ("email.send", {**EMAIL, "cc": "x@example.com"}, "params.cc"),
    ],
)
def test_bad_params_are_refused_with_the_field_named(
    api: Api, job_type: str, params: dict[str, Any], field: str
) -> None:
    response = api.post("/api/v1/jobs", json={"type": job_type, "params": params})
    fields = [e["field"] for e in assert_problem(response, 422)["errors"]]
    assert field in fields, fields


def test_email_to_a_domain_the_operator_did_not_allow_is_refused_and_sends_nothing(
    api: Api, smtp: Any
) -> None:
    # More in test_submit_validation.py: nothing is written, and the job checks again.
    _port, inbox = smtp
    before = len(inbox.messages)
    response = api.post(
        "/api/v1/jobs", json={"type": "email.send", "params": {**EMAIL, "to": "v@elsewhere.org"}}
    )
    assert assert_problem(response, 422)["errors"][0]["type"] == "recipient_not_allowed"
    assert len(inbox.messages) == before
