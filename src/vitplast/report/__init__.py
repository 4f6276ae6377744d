"""The report of a sweep: statistics (``stats``), the paper's claims (``claims``), figures, tables, HTML.

Entry point: :func:`make_report` (``vitplast report DIR``).
"""

from vitplast.report.build import Report, make_report

__all__ = ["Report", "make_report"]
