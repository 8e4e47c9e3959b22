"""``python -m bench exports``: export.csv and export.xlsx of a million orders, against bare code.

A LocalStack gets one user and ``--rows`` seeded orders; each export job is submitted over the
API and timed from submit to ``succeeded`` (polling the job), while the RSS of every process of
the cpu worker tree is sampled. The reference runs the very SELECT the jobs run (compiled from
``select_orders``) in a bare subprocess that imports only sqlite3, csv and xlsxwriter, writing
the same cells with the same workbook options; its peak RSS is its own VmHWM. (Not getrusage's
maxrss of children: that includes the pages of this 100+ MB process the child was forked from
before it exec'd.) The ratios are jobcast / bare.

With rustpy-xlsxwriter installed (``jobcast[fast-xlsx]``), the cpu worker is then restarted with
``JOBCAST_XLSX_ENGINE=rustpy-xlsxwriter`` and export.xlsx runs again (``xlsx-rust``), against a
bare rustpy-xlsxwriter program and against bare xlsxwriter; ``--no-xlsx-rust`` skips it.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url

from bench.common import local_stack, log_errors, machine, positive, say, signup, table
from bench.procfs import RssSampler
from jobcast.service.builtin.exports import COLUMNS, SHEET_ROWS, ExportParams
from jobcast.service.builtin.filters import select_orders
from jobcast.service.builtin.models import Order

KINDS = ("csv", "xlsx")
#: export.xlsx again, on a cpu worker restarted with JOBCAST_XLSX_ENGINE=rustpy-xlsxwriter.
RUST = "xlsx-rust"
POLL_SECONDS = 0.05
WORKER_ARGV = (sys.executable, "-m", "jobcast", "worker", "--pool")

# A standalone program, so the reference process holds nothing but what the work needs (the
# jobcast package alone is ~100 MB and 2 s of imports). Same rows, same cell values and types
# as the jobs write: created_at as ISO 8601 UTC text in CSV, a date cell in Excel.
BARE_PROGRAM = r"""
import csv, json, os, sqlite3, sys, time
from datetime import datetime

kind, database, sql, out, columns, sheet_rows = sys.argv[1:7]
columns, sheet_rows = json.loads(columns), int(sheet_rows)
def status_kb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
start_rss_kb = status_kb("VmRSS")
started = time.perf_counter()
rows = sqlite3.connect(database).execute(sql)
count = 0
if kind == "csv":
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow((row[0], datetime.fromisoformat(row[1]).isoformat() + "Z", *row[2:]))
            count += 1
elif kind == "xlsx":
    import xlsxwriter
    book = xlsxwriter.Workbook(out, {
        "constant_memory": True, "tmpdir": os.path.dirname(out), "strings_to_formulas": False,
        "strings_to_urls": False, "default_date_format": "yyyy-mm-dd hh:mm:ss"})
    line = sheet_rows
    for row in rows:
        if line == sheet_rows:
            sheet, line = book.add_worksheet(), 0
            sheet.write_row(0, 0, columns)
        line += 1
        sheet.write_row(line, 0, (row[0], datetime.fromisoformat(row[1]), *row[2:]))
        count += 1
    book.close()
elif kind == "xlsx-rust":
    import itertools
    import rustpy_xlsxwriter
    def records():
        global count
        for row in rows:
            count += 1
            yield dict(zip(columns, (row[0], datetime.fromisoformat(row[1]), *row[2:])))
    total = sqlite3.connect(database).execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]
    stream = records()
    sheets = [(f"Sheet{n}", itertools.islice(stream, sheet_rows))
              for n in range(1, max(1, -(-total // sheet_rows)) + 1)]
    rustpy_xlsxwriter.write_worksheets(sheets, out, datetime_format="yyyy-mm-dd hh:mm:ss")
seconds = time.perf_counter() - started
print(json.dumps({"rows": count, "seconds": seconds, "start_rss_kb": start_rss_kb,
                  "peak_rss_kb": status_kb("VmHWM")}))
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rows", type=positive, default=1_000_000, help="orders to seed and export"
    )
    parser.add_argument(
        "--xlsx-rust",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run export.xlsx with JOBCAST_XLSX_ENGINE=rustpy-xlsxwriter (if installed)",
    )


def export_sql(owner_id: int) -> str:
    """The SELECT the export jobs run for ``owner_id`` with no filters, as SQLite text."""
    table_ = Order.__table__
    query = select_orders(owner_id, ExportParams(), *(table_.c[name] for name in COLUMNS))
    compiled = query.order_by(table_.c.id).compile(
        dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}
    )
    return str(compiled)


# --- jobcast ------------------------------------------------------------------------------


def _seed(env: dict[str, str], rows: int, email: str) -> dict[str, Any]:
    say(f"seeding {rows:,} orders (jobcast demo seed)")
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "jobcast", "demo", "seed", "--rows", str(rows), "--email", email],
        env=env,
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_second": round(rows / seconds)}


def _instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _span(job: dict[str, Any], start: str, end: str) -> float | None:
    a, b = _instant(job.get(start)), _instant(job.get(end))
    return None if a is None or b is None else round((b - a).total_seconds(), 3)


def _run_job(http: requests.Session, base_url: str, kind: str, worker_pid: int) -> dict[str, Any]:
    """Submit ``export.<kind>``, wait for it, sample the cpu worker tree's RSS meanwhile."""
    job_type = "export.xlsx" if kind == RUST else f"export.{kind}"
    say(f"running {job_type} ({kind})")
    load_before = os.getloadavg()[0]
    with RssSampler(worker_pid) as rss:
        started = time.perf_counter()
        job = _submit_and_wait(http, base_url, job_type, {})
        seconds = time.perf_counter() - started
    load = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    rows = job["result"]["rows"]
    download_started = time.perf_counter()
    link = job["result"]["download_url"]
    digest = _download(http, link if link.startswith("http") else base_url + link)
    return {
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds),
        "queued_seconds": _span(job, "created_at", "started_at"),
        "run_seconds": _span(job, "started_at", "finished_at"),
        "file_mb": round(job["result"]["size"] / 2**20, 1),
        "download_seconds": round(time.perf_counter() - download_started, 3),
        "sha256": digest,
        "worker_rss": rss.report(),
        "loadavg_1m_before_after": load,
    }


def _submit_and_wait(
    http: requests.Session, base_url: str, job_type: str, params: dict[str, Any]
) -> dict[str, Any]:
    response = http.post(f"{base_url}/api/v1/jobs", json={"type": job_type, "params": params})
    if response.status_code != 202:
        raise RuntimeError(f"{job_type}: HTTP {response.status_code} {response.text}")
    job_id = response.json()["id"]
    while True:
        job: dict[str, Any] = http.get(f"{base_url}/api/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(POLL_SECONDS)
    if job["status"] != "succeeded":
        raise RuntimeError(f"{job_type} ended {job['status']}: {job.get('error')}")
    return job


def _restart_cpu_worker(stack: Any, http: requests.Session, env: dict[str, str]) -> int:
    """Restart the cpu worker with ``env`` added; returns its pid once it has run a job."""
    old = stack.process("worker-cpu")
    old.terminate()
    old.wait(timeout=60)
    stack.env.update(env)
    pid: int = stack.start_process("worker-cpu", [*WORKER_ARGV, "cpu"]).pid
    _submit_and_wait(http, stack.base_url, "export.csv", {"limit": 1})  # up and warm
    return pid


def _download(http: requests.Session, url: str) -> str:
    digest = hashlib.sha256()
    with http.get(url, stream=True, timeout=300) as response:
        response.raise_for_status()
        for chunk in response.iter_content(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- bare reference -----------------------------------------------------------------------


def _run_bare(kind: str, database: str, sql: str, out: Path) -> dict[str, Any]:
    say(f"running the bare {kind} reference")
    argv = [sys.executable, "-c", BARE_PROGRAM, kind, database, sql, str(out)]
    argv += [json.dumps(COLUMNS), str(SHEET_ROWS)]
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.PIPE, check=True)
    wall = time.perf_counter() - started
    load = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    report = json.loads(done.stdout)
    rows, seconds = report["rows"], report["seconds"]
    return {
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds),
        "wall_seconds_with_startup": round(wall, 3),
        "file_mb": round(out.stat().st_size / 2**20, 1),
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "peak_rss_mb": round(report["peak_rss_kb"] / 1024, 1),
        "peak_rss_growth_mb": round((report["peak_rss_kb"] - report["start_rss_kb"]) / 1024, 1),
        "loadavg_1m_before_after": load,
    }


# --- the benchmark ------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    # Named explicitly: the exports module registers its job types on import, whether or not
    # jobcast.service.builtin imports it.
    modules = {"JOBCAST_JOB_MODULES": "jobcast.service.builtin,jobcast.service.builtin.exports"}
    with local_stack(
        "exports", env_overrides=modules, worker_pools=("io", "cpu"), keep=args.keep
    ) as stack:
        email = f"bench-{uuid.uuid4().hex[:6]}@example.com"
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {signup(stack.base_url, email, http)}"
        owner_id = http.get(f"{stack.base_url}/api/v1/me").json()["id"]
        seed = _seed(stack.env, args.rows, email)
        worker_pid = stack.process("worker-cpu").pid
        database = make_url(stack.env["JOBCAST_DATABASE_URL"]).database or ""
        sql = export_sql(owner_id)
        kinds: tuple[str, ...] = KINDS
        if args.xlsx_rust and importlib.util.find_spec("rustpy_xlsxwriter") is not None:
            kinds = (*KINDS, RUST)
        jobs: dict[str, dict[str, Any]] = {}
        bare: dict[str, dict[str, Any]] = {}
        # Each job right before its reference, so both see about the same load on a shared host.
        for kind in kinds:
            if kind == RUST:
                worker_pid = _restart_cpu_worker(
                    stack, http, {"JOBCAST_XLSX_ENGINE": "rustpy-xlsxwriter"}
                )
            jobs[kind] = _run_job(http, stack.base_url, kind, worker_pid)
            bare[kind] = _run_bare(kind, database, sql, stack.root / f"bare.{kind}")
        cpu_concurrency = stack.env.get("JOBCAST_CPU_CONCURRENCY") or str(os.cpu_count())
        server_errors = log_errors(stack.logs)
    document = {
        "benchmark": "exports",
        "params": {"rows": args.rows, "database": "sqlite", "cpu_concurrency": cpu_concurrency},
        "machine": machine(),
        "seed": seed,
        "jobcast": jobs,
        "bare": bare,
        "ratio_jobcast_to_bare": {kind: _ratios(jobs[kind], bare[kind]) for kind in kinds},
        # The Rust engine against the reference the target names: bare xlsxwriter.
        "ratio_xlsx_rust_to_bare_xlsxwriter": (
            _ratios(jobs[RUST], bare["xlsx"]) if RUST in jobs else "not run"
        ),
        "checks": {
            "rows_match": all(jobs[k]["rows"] == bare[k]["rows"] == args.rows for k in kinds),
            "csv_identical_to_bare": jobs["csv"]["sha256"] == bare["csv"]["sha256"],
        },
        "server_errors": server_errors,
    }
    _print(document)
    return document


def _ratios(job: dict[str, Any], bare: dict[str, Any]) -> dict[str, float | None]:
    def ratio(a: float | None, b: float) -> float | None:
        return None if a is None or not b else round(a / b, 2)

    return {
        "seconds": ratio(job["seconds"], bare["seconds"]),
        "run_seconds": ratio(job["run_seconds"], bare["seconds"]),
        "peak_rss": ratio(job["worker_rss"]["peak_single_process_mb"], bare["peak_rss_mb"]),
        "peak_rss_growth": ratio(
            job["worker_rss"]["peak_single_process_growth_mb"], bare["peak_rss_growth_mb"]
        ),
    }


def _print(document: dict[str, Any]) -> None:
    rows = []
    for kind in document["jobcast"]:
        job, bare = document["jobcast"][kind], document["bare"][kind]
        ratio = document["ratio_jobcast_to_bare"][kind]
        rss = job["worker_rss"]
        rows += [
            [
                f"jobcast {kind}",
                job["seconds"],
                job["rows_per_second"],
                job["file_mb"],
                rss["peak_single_process_mb"],
                rss["peak_single_process_growth_mb"],
                _load(job),
            ],
            [
                f"bare {kind}",
                bare["seconds"],
                bare["rows_per_second"],
                bare["file_mb"],
                bare["peak_rss_mb"],
                bare["peak_rss_growth_mb"],
                _load(bare),
            ],
            [
                f"ratio {kind}",
                ratio["seconds"],
                None,
                None,
                ratio["peak_rss"],
                ratio["peak_rss_growth"],
                None,
            ],
        ]
    header = ["export", "seconds", "rows/s", "file MB", "peak RSS MB", "RSS growth MB", "load"]
    table(f"exports of {document['params']['rows']:,} rows", rows, header)
    print(f"checks: {document['checks']}", file=sys.stderr)


def _load(figure: dict[str, Any]) -> str:
    before, after = figure["loadavg_1m_before_after"]
    return f"{before:.1f}-{after:.1f}"
