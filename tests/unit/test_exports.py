"""The order filters and the export writers without servers: params, the SQL they make, the
files."""

from __future__ import annotations

import csv
import importlib.util
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import openpyxl
import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, create_engine, insert
from sqlalchemy.pool import StaticPool

from jobcast.errors import ConfigError, JobCancelled, TransientJobError
from jobcast.service.auth.models import User
from jobcast.service.builtin import exports, filters
from jobcast.service.builtin.exports import COLUMNS, Batch, ExportParams
from jobcast.service.builtin.filters import OrderFilter, Region, select_orders
from jobcast.service.builtin.models import ORDER_STATUSES, REGIONS, Order
from jobcast.service.extensions import db


def test_the_literal_types_list_exactly_the_models_values() -> None:
    assert get_args(Region) == REGIONS
    assert get_args(filters.OrderStatus) == ORDER_STATUSES


# --- params ---------------------------------------------------------------------------------


def test_a_bare_date_means_a_whole_day_and_an_instant_stays_an_instant() -> None:
    params = ExportParams.model_validate(
        {"created_from": "2024-03-01", "created_to": "2024-03-01T00:00:00Z"}
    )
    assert params.created_from == date(2024, 3, 1)
    assert params.created_to == datetime(2024, 3, 1, tzinfo=UTC)


def test_a_time_without_an_offset_is_utc() -> None:
    params = ExportParams.model_validate({"created_from": "2024-03-01T12:30:00"})
    assert params.created_from == datetime(2024, 3, 1, 12, 30, tzinfo=UTC)


def test_params_survive_the_round_trip_through_the_job_row() -> None:
    """The API stores params as JSON and the worker validates them again: same meaning."""
    for raw in (
        {"created_from": "2024-03-01", "created_to": "2024-03-02"},
        {"created_from": "2024-03-01T10:00:00+02:00", "created_to": "2024-03-01T10:00:00Z"},
        {"region": "east", "status": "paid", "min_total_cents": 0, "limit": 10},
    ):
        params = ExportParams.model_validate(raw)
        assert ExportParams.model_validate(params.model_dump(mode="json")) == params


@pytest.mark.parametrize(
    ("created_from", "created_to"),
    [
        ("2024-03-01", "2024-03-01"),
        ("2024-03-01T23:00:00Z", "2024-03-01"),
        ("2024-03-01T10:00:00Z", "2024-03-01T10:00:00Z"),
    ],
)
def test_a_range_may_be_one_day_or_one_instant(created_from: str, created_to: str) -> None:
    ExportParams.model_validate({"created_from": created_from, "created_to": created_to})


@pytest.mark.parametrize(
    ("created_from", "created_to"),
    [
        ("2024-03-02", "2024-03-01"),
        ("2024-03-02T00:00:00Z", "2024-03-01"),
        ("2024-03-01T10:00:01Z", "2024-03-01T10:00:00Z"),
    ],
)
def test_a_range_that_ends_before_it_starts_is_refused_on_created_to(
    created_from: str, created_to: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        ExportParams.model_validate({"created_from": created_from, "created_to": created_to})
    assert [e["loc"] for e in caught.value.errors()] == [("created_to",)]


@pytest.mark.parametrize(
    "raw",
    [
        {"region": "mars"},
        {"status": "lost"},
        {"min_total_cents": -1},
        {"limit": 0},
        {"limit": 5_000_001},
        {"created_from": "yesterday"},
        {"user_id": 2},
    ],
)
def test_bad_filters_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ExportParams.model_validate(raw)


def test_the_report_filters_take_no_limit() -> None:
    with pytest.raises(ValidationError):
        OrderFilter.model_validate({"limit": 5})


# --- the query ------------------------------------------------------------------------------

T0 = datetime(2024, 3, 1, tzinfo=UTC)
# (user, created_at, region, status, total_cents), ids 1.. in this order
ORDERS = [
    (1, T0 - timedelta(seconds=1), "north", "paid", 1_000),
    (1, T0, "north", "pending", 5_000),
    (1, T0 + timedelta(hours=23, minutes=59, seconds=59), "south", "paid", 9_000),
    (1, T0 + timedelta(days=1), "north", "paid", 20_000),
    (2, T0, "north", "paid", 50_000),
]


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    engine = create_engine("sqlite://", poolclass=StaticPool)
    db.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(User),
            [{"id": n, "email": f"u{n}@example.com", "password_hash": "x"} for n in (1, 2)],
        )
        conn.execute(
            insert(Order),
            [
                {
                    "user_id": user,
                    "created_at": created,
                    "customer": "c",
                    "region": region,
                    "product": "p",
                    "quantity": 1,
                    "unit_price_cents": total,
                    "total_cents": total,
                    "status": status,
                }
                for user, created, region, status, total in ORDERS
            ],
        )
    yield engine
    engine.dispose()


@pytest.mark.parametrize(
    ("raw", "ids"),
    [
        ({}, [1, 2, 3, 4]),
        ({"region": "north"}, [1, 2, 4]),
        ({"status": "paid", "region": "north"}, [1, 4]),
        ({"min_total_cents": 9_000}, [3, 4]),
        ({"created_from": "2024-03-01"}, [2, 3, 4]),
        ({"created_to": "2024-03-01"}, [1, 2, 3]),
        ({"created_from": "2024-03-01", "created_to": "2024-03-01"}, [2, 3]),
        ({"created_to": "2024-03-01T00:00:00Z"}, [1, 2]),
        ({"created_from": "2024-03-01T00:00:01+00:00"}, [3, 4]),
        ({"created_from": "2024-03-01T01:00:00+01:00", "created_to": "2024-03-01T00:00:00"}, [2]),
    ],
)
def test_select_orders_finds_exactly_the_owners_matching_orders(
    engine: Engine, raw: dict[str, Any], ids: list[int]
) -> None:
    query = select_orders(1, OrderFilter.model_validate(raw), Order.id).order_by(Order.id)
    with engine.connect() as conn:
        assert list(conn.scalars(query)) == ids


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4])
def test_rows_come_in_full_batches_as_plain_tuples(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    """Every row once, in order, whether the rows end on a batch boundary or not."""
    monkeypatch.setattr(exports, "BATCH", 2)
    query = select_orders(1, ExportParams(), *exports._EXPORTED).order_by(Order.id).limit(count)
    with engine.connect() as conn:
        batches = list(exports._driver_rows(conn, query))
    assert [len(b) for b in batches] == [2] * (count // 2) + [1] * (count % 2)
    rows = [row for batch in batches for row in batch]
    assert [row[0] for row in rows] == [1, 2, 3, 4][:count]
    assert all(type(row) is tuple for batch in batches[1:] for row in batch)


def test_created_at_is_read_as_text_that_fromisoformat_reads(engine: Engine) -> None:
    query = select_orders(1, ExportParams(), *exports._EXPORTED).order_by(Order.id)
    with engine.connect() as conn:
        row = next(exports._driver_rows(conn, query))[0]
    assert datetime.fromisoformat(row[1]) == (T0 - timedelta(seconds=1)).replace(tzinfo=None)
    assert tuple(row[2:]) == ("c", "north", "p", 1, 1_000, 1_000, "paid")


# --- the writers ----------------------------------------------------------------------------

# As the driver returns a row: created_at is the text of the naive UTC time stored.
ROW = (1, "2024-03-01 12:30:15", "c-1", "north", "widget", 2, 150, 300, "paid")


def _batches(count: int, size: int = 2) -> list[list[tuple[Any, ...]]]:
    rows = [(n, *ROW[1:]) for n in range(1, count + 1)]
    return [rows[i : i + size] for i in range(0, count, size)]


def test_csv_has_a_header_and_utc_times(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    assert exports.write_csv(path, _batches(3)) == 3
    with path.open(newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == list(COLUMNS)
    assert lines[1] == [
        "1",
        "2024-03-01T12:30:15Z",
        "c-1",
        "north",
        "widget",
        "2",
        "150",
        "300",
        "paid",
    ]
    assert [line[0] for line in lines[1:]] == ["1", "2", "3"]


#: Text a spreadsheet would run as a formula, and text that only contains such characters.
FORMULAS = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]


@pytest.mark.parametrize("text", FORMULAS)
def test_csv_text_that_a_spreadsheet_would_run_is_written_inert(tmp_path: Path, text: str) -> None:
    path = tmp_path / "orders.csv"
    row = (1, ROW[1], text, "north", text, 2, 150, 300, "paid")
    exports.write_csv(path, [[row]])
    with path.open(newline="") as f:
        line = list(csv.reader(f))[1]
    assert line[2] == line[4] == "'" + text
    assert line[5:] == ["2", "150", "300", "paid"]


def test_csv_text_with_formula_characters_inside_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    row = (1, ROW[1], "a=b", "north", "x+y@z", 2, 150, 300, "paid")
    exports.write_csv(path, [[row]])
    with path.open(newline="") as f:
        line = list(csv.reader(f))[1]
    assert (line[2], line[4]) == ("a=b", "x+y@z")


def _write_rust(path: Path, batches: Iterable[Batch]) -> int:
    batches = list(batches)
    return exports.write_xlsx_rust(path, batches, sum(len(b) for b in batches))


needs_rust = pytest.mark.skipif(
    importlib.util.find_spec("rustpy_xlsxwriter") is None, reason="needs jobcast[fast-xlsx]"
)
#: Both workbook writers must write the same workbook; the Rust one only if it is installed.
WRITERS = [
    pytest.param(exports.write_xlsx, id="xlsxwriter"),
    pytest.param(_write_rust, id="rustpy-xlsxwriter", marks=needs_rust),
]
Writer = Callable[[Path, Iterable[Batch]], int]


@pytest.mark.parametrize("write", WRITERS)
def test_xlsx_starts_a_new_sheet_when_one_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: Writer
) -> None:
    monkeypatch.setattr(exports, "SHEET_ROWS", 2)
    path = tmp_path / "orders.xlsx"
    rows = [*_batches(4), [(5, "2024-03-01 12:30:15.250000", *ROW[2:])]]
    assert write(path, rows) == 5
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["Orders", "Orders 2", "Orders 3"]
    sheets = [list(book[name].iter_rows(values_only=True)) for name in book.sheetnames]
    assert all(sheet[0] == COLUMNS for sheet in sheets)
    assert [row[0] for sheet in sheets for row in sheet[1:]] == [1, 2, 3, 4, 5]
    first = sheets[0][1]
    assert first[1] == datetime(2024, 3, 1, 12, 30, 15) and first[2:] == ROW[2:]
    assert sheets[2][1][1] == datetime(2024, 3, 1, 12, 30, 15, 250_000)  # to the millisecond
    for name in book.sheetnames:
        assert book[name]["A1"].font.b and book[name]["B2"].number_format.startswith("yyyy")
        assert book[name].freeze_panes == "A2"


@pytest.mark.parametrize("write", WRITERS)
def test_workbook_text_that_looks_like_a_formula_stays_text(tmp_path: Path, write: Writer) -> None:
    path = tmp_path / "orders.xlsx"
    formulas = [text for text in FORMULAS if text[0] in "=+-@"]  # (XML escapes \r as _x000D_)
    rows = [
        [(n, ROW[1], text, "north", text, 2, 150, 300, "paid")] for n, text in enumerate(formulas)
    ]
    write(path, rows)
    cells = [row[2] for row in openpyxl.load_workbook(path)["Orders"].iter_rows(min_row=2)]
    assert [(cell.value, cell.data_type) for cell in cells] == [(t, "s") for t in formulas]


@pytest.mark.parametrize("write", WRITERS)
def test_a_workbook_without_rows_has_the_header(tmp_path: Path, write: Writer) -> None:
    path = tmp_path / "orders.xlsx"
    assert write(path, []) == 0
    book = openpyxl.load_workbook(path)
    assert list(book["Orders"].iter_rows(values_only=True)) == [COLUMNS]


def _cancelled_after_one_batch() -> Iterator[list[tuple[Any, ...]]]:
    yield _batches(2)[0]
    raise JobCancelled("job")


def test_a_workbook_stopped_half_way_is_closed_at_once(tmp_path: Path) -> None:
    """A cancelled export must not leave the closing to the workbook's destructor."""
    path = tmp_path / "orders.xlsx"
    with pytest.raises(JobCancelled):
        exports.write_xlsx(path, _cancelled_after_one_batch())
    assert [p.name for p in tmp_path.iterdir()] == ["orders.xlsx"]  # temp files removed


@needs_rust
def test_the_rust_writer_stopped_half_way_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(JobCancelled):
        exports.write_xlsx_rust(tmp_path / "orders.xlsx", _cancelled_after_one_batch(), 4)
    assert list(tmp_path.iterdir()) == []


@needs_rust
def test_rows_added_since_the_count_that_overflow_the_sheets_ask_for_a_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "SHEET_ROWS", 2)
    with pytest.raises(TransientJobError):
        exports.write_xlsx_rust(tmp_path / "orders.xlsx", _batches(3), expected=2)


def test_the_rust_engine_missing_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "rustpy_xlsxwriter", None)  # import fails
    with pytest.raises(
        ConfigError, match=r"JOBCAST_XLSX_ENGINE.*pip install 'jobcast\[fast-xlsx\]'"
    ):
        exports.write_xlsx_rust(tmp_path / "orders.xlsx", _batches(1), expected=1)
