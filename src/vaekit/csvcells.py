"""Spreadsheet-safe CSV: the one place where vaekit writes text cells into a CSV.

Ids, labels and feature names come from the user's files, and a spreadsheet that opens a CSV runs
a cell such as ``=HYPERLINK(...)`` or ``=cmd|' /C calc'!A0`` as a formula. Following OWASP's advice
on CSV injection, a text cell (or column name) that starts with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return is written with a single quote in front (``'=HYPERLINK(...)``), which
spreadsheets show as text. Numbers are never touched, so a score of -3.2 or an integer id of -5
stays a number; text that is a plain number (``-5``, ``+1.5e3``) is not a formula and is kept as
well. ``raw=True`` (``--raw-csv``) writes the cells as they are.

Rows end in ``\\r\\n`` (RFC 4180), so that the csv writer quotes every cell holding a ``\\r`` or a
``\\n``: a reader then sees exactly one row per output row, whatever the ids contain.
"""

from __future__ import annotations

import re

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
LINE_END = "\r\n"
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def safe_text(value):
    """``value`` with a leading ``'`` if it is text a spreadsheet would run as a formula; else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_frame(frame, raw: bool = False):
    """A copy of the DataFrame ``frame`` with :func:`safe_text` applied to its column names and to
    the cells of its text columns (numeric columns are left alone); ``frame`` itself if ``raw``."""
    import pandas as pd

    if raw:
        return frame
    out = frame.rename(columns=lambda c: safe_text(c) if isinstance(c, str) else c)
    for i in range(out.shape[1]):
        values = out.iloc[:, i]
        if pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values):
            out.isetitem(i, values.map(safe_text, na_action="ignore"))
    return out


def write_csv(frame, f, raw: bool = False, **to_csv) -> None:
    """``frame.to_csv(f)`` with safe text cells (:func:`safe_frame`) and ``\\r\\n`` row ends; no index."""
    safe_frame(frame, raw).to_csv(f, index=False, lineterminator=LINE_END, **to_csv)
