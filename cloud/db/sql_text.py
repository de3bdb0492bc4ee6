"""SQL text as repositories write it: one placeholder style (`:name`) for both backends.

SQLite understands `:name` natively; psycopg wants `%(name)s`, so the text is rewritten
once per statement. The rewrite skips string literals and PostgreSQL `::` casts. The same
scan tells the layer which tenant tables a statement touches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TOKEN = re.compile(r"'(?:[^']|'')*'|::|:([A-Za-z_][A-Za-z0-9_]*)|%")


def to_psycopg(sql: str) -> str:
    """`:name` -> `%(name)s` and every `%` -> `%%`; `:x` in literals and `::` casts stay."""

    def replace(m: re.Match[str]) -> str:
        text = m.group(0)
        if text == "%" or text.startswith("'"):
            return text.replace("%", "%%")  # psycopg scans literals for % too
        if m.group(1):
            return f"%({m.group(1)})s"
        return text

    return _TOKEN.sub(replace, sql)


def placeholders(sql: str) -> set[str]:
    """The `:name` placeholders a statement uses (outside literals)."""
    return {m.group(1) for m in _TOKEN.finditer(sql) if m.group(1)}


def tables_named(sql: str, tables: Iterable[str]) -> set[str]:
    """Which of `tables` the statement names as a whole word (outside literals)."""
    bare = re.sub(r"'(?:[^']|'')*'", "''", sql).lower()
    return {t for t in tables if re.search(rf"\b{re.escape(t)}\b", bare)}
