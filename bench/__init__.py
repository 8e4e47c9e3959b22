"""Standalone benchmarks of jobcast that print one JSON document: ``python -m bench <name>``.

Each starts its own LocalStack (Redis, web, workers as processes) in a temp dir, measures, and
stops it again; see bench/README.md for what each one reports.
"""
