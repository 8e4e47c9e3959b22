"""``export.csv`` and ``export.xlsx``: the caller's orders, filtered, streamed into a file.

A million rows must fit in a worker's memory budget, so rows are never all in memory: they are
counted first (for progress), then streamed on a connection of their own in batches of
``BATCH`` and written as they arrive. Which orders is ``builtin.filters``' business.

The writers do per row only what a bare csv or xlsxwriter loop would: rows come as the
driver's plain tuples (SQLAlchemy compiles, binds and opens the cursor, but building its
``Row`` objects and parsing timestamps cost more than half of what the bare csv loop spends
in all), with ``created_at`` as text that ``datetime.fromisoformat`` reads. The workbook is
written by xlsxwriter, or by the several times faster rustpy-xlsxwriter when
``JOBCAST_XLSX_ENGINE`` asks for it (``pip install 'jobcast[fast-xlsx]'``); without that package
an ``export.xlsx`` is refused at submit rather than failed in the worker.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import itertools
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import xlsxwriter
from flask import current_app
from pydantic import Field
from sqlalchemy import Connection, Select, String, cast, func
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from jobcast.config import Settings
from jobcast.errors import ConfigError, ServiceUnavailable, TransientJobError
from jobcast.jobs.context import JobContext
from jobcast.jobs.registry import job
from jobcast.service.builtin.filters import OrderFilter, select_orders
from jobcast.service.builtin.models import Order
from jobcast.service.extensions import db

#: Rows fetched per round trip and written between progress calls.
BATCH = 5_000
#: Data rows per worksheet: Excel's 1,048,576-row limit minus the header row.
SHEET_ROWS = 1_048_575
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

#: One round trip's rows, each a sequence of ``COLUMNS`` values, ``created_at`` as naive UTC
#: ISO 8601 text (``2024-03-01 12:30:15.123456``).
Batch = Sequence[Sequence[Any]]

_ORDERS = Order.__table__


class _TimestampText(FunctionElement[str]):
    """A timestamp column as ISO 8601 text, ``YYYY-MM-DD HH:MM:SS[.ffffff]``."""

    type = String()
    name = "timestamp_text"
    inherit_cache = True


@compiles(_TimestampText)
def _timestamp_text(element: _TimestampText, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite holds the text already (sqlalchemy's DATETIME storage format); elsewhere a cast
    # to text gives ISO 8601 as well.
    (column,) = element.clauses
    return compiler.process(cast(column, String()), **kw)


@compiles(_TimestampText, "postgresql")
def _timestamp_text_pg(element: _TimestampText, compiler: SQLCompiler, **kw: Any) -> str:
    # Not a cast: a cast follows the server's DateStyle, which need not be ISO.
    (column,) = element.clauses
    return f"to_char({compiler.process(column, **kw)}, 'YYYY-MM-DD HH24:MI:SS.US')"


# created_at is read as the text of the naive UTC it is stored as (see jobcast.db.types), the
# same on every database: the rows then need no result processing at all (see _driver_rows).
_EXPORTED = (
    _ORDERS.c.id,
    _TimestampText(_ORDERS.c.created_at).label("created_at"),
    _ORDERS.c.customer,
    _ORDERS.c.region,
    _ORDERS.c.product,
    _ORDERS.c.quantity,
    _ORDERS.c.unit_price_cents,
    _ORDERS.c.total_cents,
    _ORDERS.c.status,
)
#: The exported columns, in file order; also the header row of both formats.
COLUMNS = tuple(column.name for column in _EXPORTED)
#: Column widths of the workbook, in ``COLUMNS`` order, and how times show in it.
_WIDTHS = (10, 20, 16, 8, 12, 9, 17, 12, 10)
_TIMESTAMP_FORMAT = "yyyy-mm-dd hh:mm:ss"
#: Excel stores a time as days since this (naive) epoch.
_EXCEL_EPOCH = datetime(1899, 12, 30)
_ONE_DAY = timedelta(days=1)
#: A CSV cell starting with one of these is read as a formula by spreadsheets (OWASP "CSV
#: injection"); such text is written behind a ``'``. The workbooks need nothing: their strings
#: are never formulas.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ExportParams(OrderFilter):
    """The filters plus how many rows to export at most (the first, by id)."""

    limit: int | None = Field(
        default=None, ge=1, le=5_000_000, description="Export at most this many rows."
    )


@contextmanager
def _batches(
    ctx: JobContext[ExportParams], *, share: float
) -> Iterator[tuple[int, Iterator[Batch]]]:
    """The rows counted, and the matching rows in id order, in batches, with progress up to
    ``share`` percent.

    The rows stream on a connection of their own: the task's session commits progress as
    the job runs, and a commit would end a server-side cursor opened on that session.
    """
    params = ctx.params
    with db.engine.connect() as conn:
        total = conn.scalar(select_orders(int(ctx.owner_id), params, func.count())) or 0
        if params.limit is not None:
            total = min(total, params.limit)
        query = (
            select_orders(int(ctx.owner_id), params, *_EXPORTED)
            .order_by(_ORDERS.c.id)
            .limit(params.limit)
        )

        def batches() -> Iterator[Batch]:
            done = 0
            ctx.progress(0, f"0 of {total} rows")
            for batch in _driver_rows(conn, query):
                yield batch
                done += len(batch)
                expected = max(total, done)  # rows added since the count
                ctx.progress(share * done / expected, f"{done} of {expected} rows")

        yield total, batches()


def _driver_rows(conn: Connection, query: Select[Any]) -> Iterator[Batch]:
    """The rows of ``query`` in batches of ``BATCH``, as the driver's own tuples.

    SQLAlchemy executes (server-side cursor where the database has one); its first fetch drains
    whatever row it buffered on opening, then the rows come straight off the DBAPI cursor. Only
    for columns without result processing (ints and text): raw and processed values are equal.
    """
    result = conn.execution_options(stream_results=True, max_row_buffer=BATCH).execute(query)
    with result:
        batch: Batch = result.fetchmany(BATCH)
        while batch:
            yield batch
            if len(batch) < BATCH:  # the last one; SQLAlchemy may have closed the cursor
                return
            batch = result.cursor.fetchmany(BATCH)


def write_csv(path: Path, batches: Iterable[Batch]) -> int:
    """Write a header and the rows to ``path``; returns the number of rows.

    The free-text columns (customer, product) are written inert: a spreadsheet opening the file
    must not run ``=HYPERLINK(...)`` that somebody typed as a customer name.
    """
    rows, parse = 0, datetime.fromisoformat
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for batch in batches:
            writer.writerows(
                [(r[0], parse(r[1]).isoformat() + "Z", _inert(r[2]), r[3], _inert(r[4]), *r[5:])
                 for r in batch]
            )  # fmt: skip
            rows += len(batch)
    return rows


def _inert(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_START) else text


def write_xlsx(path: Path, batches: Iterable[Batch]) -> int:
    """Write the rows to a workbook at ``path``, a new sheet every ``SHEET_ROWS`` rows.

    ``constant_memory`` flushes each row to a temporary file (kept next to the result, so an
    abandoned attempt leaves nothing elsewhere); strings are never read as formulas or links,
    which is both faster and safe with user-supplied text. Times go in as Excel serial numbers
    under a column date format: xlsxwriter's datetime conversion adds a fifth to each row.
    """
    options = {
        "constant_memory": True,
        "tmpdir": str(path.parent),
        "strings_to_formulas": False,
        "strings_to_urls": False,
    }
    # Closed on the way out even when the job is cancelled half-way: left open, the workbook
    # would be written by its destructor, later, into a staging directory already discarded.
    with xlsxwriter.Workbook(str(path), options) as workbook:
        formats = (
            workbook.add_format({"bold": True}),
            workbook.add_format({"num_format": _TIMESTAMP_FORMAT}),
        )
        sheet = _orders_sheet(workbook, formats, 1)
        sheets, line, rows, parse = 1, 0, 0, datetime.fromisoformat
        for batch in batches:
            for row in batch:
                if line == SHEET_ROWS:
                    sheets += 1
                    sheet, line = _orders_sheet(workbook, formats, sheets), 0
                line += 1
                serial = (parse(row[1]) - _EXCEL_EPOCH) / _ONE_DAY
                sheet.write_row(line, 0, (row[0], serial, *row[2:]))
            rows += len(batch)
    return rows


def write_xlsx_rust(path: Path, batches: Iterable[Batch], expected: int) -> int:
    """The same workbook as ``write_xlsx``, written by rustpy-xlsxwriter (Rust, constant memory).

    Its sheets are named before the first row is written, so the rows counted (``expected``)
    decide how many; if rows added since the count overflow the last one, the attempt fails
    for a retry. Without rows it would write no header: ``write_xlsx`` writes that workbook.
    """
    try:
        import rustpy_xlsxwriter as rx
    except ImportError:
        raise ConfigError(_RUST_MISSING) from None
    rows = 0

    def records() -> Iterator[dict[str, Any]]:
        nonlocal rows
        parse = datetime.fromisoformat
        for batch in batches:
            rows += len(batch)
            for r in batch:
                serial = (parse(r[1]) - _EXCEL_EPOCH) / _ONE_DAY
                yield dict(zip(COLUMNS, (r[0], serial, *r[2:]), strict=True))

    stream = records()
    first = next(stream, None)
    if first is None:
        return write_xlsx(path, ())
    stream = itertools.chain((first,), stream)
    names = [_sheet_name(n) for n in range(1, max(1, -(-expected // SHEET_ROWS)) + 1)]
    header, timestamp = rx.Format().set_bold(), rx.Format().set_num_format(_TIMESTAMP_FORMAT)
    rx.write_worksheets(
        [(name, itertools.islice(stream, SHEET_ROWS)) for name in names],
        str(path),
        freeze_panes={"general": {"row": 1, "col": 0}},
        header_format=dict.fromkeys(names, header),
        column_widths={name: list(_WIDTHS) for name in names},
        column_formats={name: {"created_at": timestamp} for name in names},
    )
    if next(stream, None) is not None:
        raise TransientJobError("orders were added while the export ran; trying again")
    return rows


_RUST_MISSING = (
    "JOBCAST_XLSX_ENGINE='rustpy-xlsxwriter' needs the rustpy-xlsxwriter package:"
    " pip install 'jobcast[fast-xlsx]'"
)


@functools.cache
def _rust_installed() -> bool:
    return importlib.util.find_spec("rustpy_xlsxwriter") is not None


def check_engine(params: ExportParams, owner_id: str) -> None:
    """At submit: refuse (503) an export.xlsx the configured engine cannot write here.

    The server's fault, not the caller's, hence not a 422; the worker keeps its own check
    (``write_xlsx_rust``) for a worker installed differently from the web processes.
    """
    settings: Settings = current_app.config["JOBCAST"]
    if settings.xlsx_engine == "rustpy-xlsxwriter" and not _rust_installed():
        raise ServiceUnavailable(f"export.xlsx cannot run on this server: {_RUST_MISSING}")


def _sheet_name(number: int) -> str:
    return "Orders" if number == 1 else f"Orders {number}"


def _orders_sheet(
    workbook: xlsxwriter.Workbook, formats: tuple[Format, Format], number: int
) -> Worksheet:
    header, timestamp = formats
    sheet = workbook.add_worksheet(_sheet_name(number))
    for col, width in enumerate(_WIDTHS):
        sheet.set_column(col, col, width, timestamp if COLUMNS[col] == "created_at" else None)
    sheet.write_row(0, 0, COLUMNS, header)
    sheet.freeze_panes(1, 0)
    return sheet


@job("export.csv", params=ExportParams, title="Export my orders as CSV", bound="cpu")
def export_csv(ctx: JobContext[ExportParams]) -> dict[str, int]:
    """Export the caller's matching orders as CSV (UTF-8, header row, ISO 8601 UTC times)."""
    path = ctx.result_path("orders.csv", "text/csv")
    with _batches(ctx, share=100) as (_, batches):
        rows = write_csv(path, batches)
    return {"rows": rows}


@job(
    "export.xlsx",
    params=ExportParams,
    title="Export my orders as Excel",
    bound="cpu",
    check=check_engine,
)
def export_xlsx(ctx: JobContext[ExportParams]) -> dict[str, int]:
    """Export the caller's matching orders as an Excel workbook (times in UTC, no offset)."""
    path = ctx.result_path("orders.xlsx", XLSX_TYPE)
    settings: Settings = current_app.config["JOBCAST"]
    # Zipping the sheets at close takes about a tenth of the time; keep that share for it.
    with _batches(ctx, share=90) as (total, batches):
        if settings.xlsx_engine == "rustpy-xlsxwriter":
            rows = write_xlsx_rust(path, batches, total)
        else:
            rows = write_xlsx(path, batches)
    return {"rows": rows}
