"""``report.xlsx``: a formatted Excel report of the caller's orders.

The database does the arithmetic (GROUP BY), so the report costs the same few queries for ten
orders or ten million; Python only lays out a few dozen cells. Revenue is the sum of the order
totals whatever their status; the ``status`` filter narrows it. Totals rows are formulas
with their values cached, so they stay right if the reader edits a figure and still read
correctly in tools that do not recalculate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import xlsxwriter
from sqlalchemy import extract, func
from xlsxwriter.format import Format
from xlsxwriter.utility import xl_range, xl_rowcol_to_cell
from xlsxwriter.worksheet import Worksheet

from jobcast.db.types import utcnow
from jobcast.jobs.context import JobContext
from jobcast.jobs.registry import job
from jobcast.service.builtin.exports import XLSX_TYPE
from jobcast.service.builtin.filters import OrderFilter, select_orders
from jobcast.service.builtin.models import Order
from jobcast.service.builtin.stats import Breakdown, Totals, order_breakdown
from jobcast.service.extensions import db

_COLUMNS = ("Orders", "Revenue", "Average order")
_MONEY = "$#,##0.00"


def monthly_totals(owner_id: int, filters: OrderFilter) -> list[tuple[date, Totals]]:
    """Totals per calendar month (UTC) from first to last, months without orders included."""
    year, month = extract("year", Order.created_at), extract("month", Order.created_at)
    query = select_orders(
        owner_id, filters, year, month, func.count(), func.coalesce(func.sum(Order.total_cents), 0)
    ).group_by(year, month)
    found = {
        date(int(y), int(m), 1): Totals(count, int(total))
        for y, m, count, total in db.session.execute(query)
    }
    months: list[tuple[date, Totals]] = []
    current, last = (min(found), max(found)) if found else (date.max, date.min)
    while current <= last:
        months.append((current, found.get(current, Totals())))
        current = date(current.year + current.month // 12, current.month % 12 + 1, 1)
    return months


@dataclass(frozen=True)
class _Formats:
    title: Format
    header: Format
    count: Format
    money: Format
    month: Format
    total_label: Format
    total_count: Format
    total_money: Format

    @classmethod
    def of(cls, workbook: xlsxwriter.Workbook) -> _Formats:
        total = {"bold": True, "top": 1}
        return cls(
            title=workbook.add_format({"bold": True, "font_size": 14}),
            header=workbook.add_format({"bold": True, "bottom": 1, "bg_color": "#DDEBF7"}),
            count=workbook.add_format({"num_format": "#,##0"}),
            money=workbook.add_format({"num_format": _MONEY}),
            month=workbook.add_format({"num_format": "yyyy-mm", "align": "left"}),
            total_label=workbook.add_format(total),
            total_count=workbook.add_format({**total, "num_format": "#,##0"}),
            total_money=workbook.add_format({**total, "num_format": _MONEY}),
        )


def _table(
    sheet: Worksheet,
    top: int,
    heading: str,
    groups: Iterable[tuple[Any, Totals]],
    formats: _Formats,
    label_format: Format | None = None,
) -> tuple[int, int]:
    """A header, a row per group and a formula total row; returns the first and last group row."""
    sheet.write_row(top, 0, (heading, *_COLUMNS), formats.header)
    row, overall = top, Totals()
    for label, totals in groups:
        row += 1
        sheet.write(row, 0, label, label_format)
        sheet.write_number(row, 1, totals.count, formats.count)
        sheet.write_number(row, 2, totals.total_cents / 100, formats.money)
        sheet.write_number(row, 3, totals.average_cents / 100, formats.money)
        overall.count += totals.count
        overall.total_cents += totals.total_cents
    first, last, end = top + 1, row, row + 1
    count, revenue = xl_rowcol_to_cell(end, 1), xl_rowcol_to_cell(end, 2)
    sheet.write(end, 0, "Total", formats.total_label)
    sheet.write_formula(
        end, 1, f"=SUM({xl_range(first, 1, last, 1)})", formats.total_count, overall.count
    )
    sheet.write_formula(
        end,
        2,
        f"=SUM({xl_range(first, 2, last, 2)})",
        formats.total_money,
        overall.total_cents / 100,
    )
    sheet.write_formula(
        end,
        3,
        f"=IF({count}=0,0,{revenue}/{count})",
        formats.total_money,
        overall.average_cents / 100,
    )
    return first, last


def _chart(
    workbook: xlsxwriter.Workbook, sheet: Worksheet, kind: str, title: str, rows: tuple[int, int]
) -> xlsxwriter.chart.Chart:
    """A chart of the revenue column of the table rows ``rows`` of ``sheet``."""
    first, last = rows
    chart = workbook.add_chart({"type": kind})
    chart.add_series(
        {
            "name": "Revenue",
            "categories": [sheet.name, first, 0, last, 0],
            "values": [sheet.name, first, 2, last, 2],
        }
    )
    chart.set_title({"name": title})
    chart.set_legend({"none": True})
    chart.set_y_axis({"num_format": "$#,##0"})
    return chart


def write_report(
    path: Path, filters: OrderFilter, breakdown: Breakdown, months: list[tuple[date, Totals]]
) -> None:
    """The workbook: a Summary sheet (figures, region and status tables, a chart) and Monthly."""
    with xlsxwriter.Workbook(str(path), {"strings_to_formulas": False}) as workbook:
        formats = _Formats.of(workbook)
        summary = workbook.add_worksheet("Summary")
        summary.set_column(0, 0, 18)
        summary.set_column(1, 3, 16)
        summary.write(0, 0, "Orders report", formats.title)
        summary.write(1, 0, f"{_describe(filters)}; generated {utcnow():%Y-%m-%d %H:%M} UTC")
        overall = breakdown.overall
        summary.write(3, 0, "Order count")
        summary.write_number(3, 1, overall.count, formats.count)
        summary.write(4, 0, "Revenue")
        summary.write_number(4, 1, overall.total_cents / 100, formats.money)
        summary.write(5, 0, "Average order")
        summary.write_number(5, 1, overall.average_cents / 100, formats.money)
        regions = _table(summary, 7, "Region", breakdown.by_region.items(), formats)
        _table(summary, regions[1] + 3, "Status", breakdown.by_status.items(), formats)
        summary.insert_chart(
            3, 5, _chart(workbook, summary, "column", "Revenue by region", regions)
        )

        monthly = workbook.add_worksheet("Monthly")
        monthly.set_column(0, 3, 16)
        if months:
            rows = _table(monthly, 0, "Month", months, formats, formats.month)
            monthly.insert_chart(1, 5, _chart(workbook, monthly, "line", "Revenue by month", rows))
        else:
            monthly.write(0, 0, "No orders match the filters.")


def _describe(filters: OrderFilter) -> str:
    chosen = filters.model_dump(mode="json", exclude_none=True)
    if not chosen:
        return "All orders"
    return "Orders with " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in chosen.items())


@job("report.xlsx", params=OrderFilter, title="Orders report (Excel)", bound="cpu")
def report_xlsx(ctx: JobContext[OrderFilter]) -> dict[str, int]:
    """A formatted Excel report of the caller's matching orders: totals, tables, charts."""
    ctx.progress(0, "totalling orders by region and status")
    breakdown = order_breakdown(int(ctx.owner_id), ctx.params)
    ctx.progress(40, "totalling orders by month")
    months = monthly_totals(int(ctx.owner_id), ctx.params)
    ctx.progress(70, "writing the workbook")
    write_report(ctx.result_path("orders-report.xlsx", XLSX_TYPE), ctx.params, breakdown, months)
    return {
        "orders": breakdown.overall.count,
        "revenue_cents": breakdown.overall.total_cents,
        "months": len(months),
    }
