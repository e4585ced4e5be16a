"""Plan against reality as one self-contained, static HTML page (`gpuplan report`)."""

from __future__ import annotations

from gpuplan.report.html import MAX_ROWS, MAX_TABLE_ROWS, render_report

__all__ = ["MAX_ROWS", "MAX_TABLE_ROWS", "render_report"]
