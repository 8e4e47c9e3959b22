"""``python -m bench exports``: export.csv and export.xlsx of a million orders, against bare code.

A LocalStack gets one user and ``--rows`` seeded orders; each export job is submitted over the
API and timed from submit to ``succeeded`` (polling the job), while the RSS of every process of
the cpu worker tree is sampled. The reference runs the very SELECT the jobs run (compiled from
``select_orders``) in a bare subprocess that imports only sqlite3, csv and xlsxwriter, writing
the same cells with the same workbook options; its peak RSS is its own VmHWM. (Not getrusage's
maxrss of children: that includes the pages of this 100+ MB process the child was forked from
before it exec'd.) The ratios are jobcast / bare.
"""

from __future__ import annotations

import argparse
import hashlib
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
from jobcast.builtin.exports import COLUMNS, SHEET_ROWS, ExportParams, select_orders
from jobcast.builtin.models import Order

KINDS = ("csv", "xlsx")
POLL_SECONDS = 0.05

# A standalone program, so the reference process holds nothing but what the work needs (the
# jobcast package alone is ~100 MB and 2 s of imports). Same rows, same cell values and types
# as the jobs write: created_at as ISO 8601 UTC text in CSV, a date cell in Excel.
BARE_PROGRAM = r"""
import csv, json, os, sqlite3, sys, time
from datetime import datetime
import xlsxwriter

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
else:
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
seconds = time.perf_counter() - started
print(json.dumps({"rows": count, "seconds": seconds, "start_rss_kb": start_rss_kb,
                  "peak_rss_kb": status_kb("VmHWM")}))
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rows", type=positive, default=1_000_000, help="orders to seed and export"
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
    say(f"running export.{kind}")
    with RssSampler(worker_pid) as rss:
        started = time.perf_counter()
        response = http.post(f"{base_url}/api/v1/jobs", json={"type": f"export.{kind}"})
        if response.status_code != 202:
            raise RuntimeError(f"export.{kind}: HTTP {response.status_code} {response.text}")
        job_id = response.json()["id"]
        while True:
            job: dict[str, Any] = http.get(f"{base_url}/api/v1/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - started
    if job["status"] != "succeeded":
        raise RuntimeError(f"export.{kind} ended {job['status']}: {job.get('error')}")
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
    }


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
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.PIPE, check=True)
    wall = time.perf_counter() - started
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
    }


# --- the benchmark ------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    # Named explicitly: the exports module registers its job types on import, whether or not
    # jobcast.builtin imports it.
    modules = {"JOBCAST_JOB_MODULES": "jobcast.builtin,jobcast.builtin.exports"}
    with local_stack(
        "exports", env_overrides=modules, worker_pools=("io", "cpu"), keep=args.keep
    ) as stack:
        email = f"bench-{uuid.uuid4().hex[:6]}@example.com"
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {signup(stack.base_url, email, http)}"
        owner_id = http.get(f"{stack.base_url}/api/v1/me").json()["id"]
        seed = _seed(stack.env, args.rows, email)
        worker_pid = stack.process("worker-cpu").pid
        jobs = {kind: _run_job(http, stack.base_url, kind, worker_pid) for kind in KINDS}
        database = make_url(stack.env["JOBCAST_DATABASE_URL"]).database or ""
        sql = export_sql(owner_id)
        bare = {kind: _run_bare(kind, database, sql, stack.root / f"bare.{kind}") for kind in KINDS}
        cpu_concurrency = stack.env.get("JOBCAST_CPU_CONCURRENCY") or str(os.cpu_count())
        server_errors = log_errors(stack.logs)
    document = {
        "benchmark": "exports",
        "params": {"rows": args.rows, "database": "sqlite", "cpu_concurrency": cpu_concurrency},
        "machine": machine(),
        "seed": seed,
        "jobcast": jobs,
        "bare": bare,
        "ratio_jobcast_to_bare": {kind: _ratios(jobs[kind], bare[kind]) for kind in KINDS},
        "checks": {
            "rows_match": all(jobs[k]["rows"] == bare[k]["rows"] == args.rows for k in KINDS),
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
    for kind in KINDS:
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
            ],
            [
                f"bare {kind}",
                bare["seconds"],
                bare["rows_per_second"],
                bare["file_mb"],
                bare["peak_rss_mb"],
                bare["peak_rss_growth_mb"],
            ],
            [
                f"ratio {kind}",
                ratio["seconds"],
                None,
                None,
                ratio["peak_rss"],
                ratio["peak_rss_growth"],
            ],
        ]
    header = ["export", "seconds", "rows/s", "file MB", "peak RSS MB", "RSS growth MB"]
    table(f"exports of {document['params']['rows']:,} rows", rows, header)
    print(f"checks: {document['checks']}", file=sys.stderr)
