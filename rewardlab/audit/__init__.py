"""Audit reward models: per-token reward traces, controlled probe suites and a self-contained HTML report."""
