"""One placeholder style for both backends: `:name` rewritten for psycopg, literals untouched."""

from __future__ import annotations

from cloud.db.sql_text import placeholders, tables_named, to_psycopg


def test_named_placeholders_become_pyformat() -> None:
    sql = "SELECT * FROM t WHERE a = :a AND b = :b_2 AND c::text = ':not' AND d LIKE '5%'"
    assert to_psycopg(sql) == (
        "SELECT * FROM t WHERE a = %(a)s AND b = %(b_2)s AND c::text = ':not' AND d LIKE '5%'"
        .replace("'5%'", "'5%%'"))
    assert placeholders(sql) == {"a", "b_2"}


def test_a_bare_percent_is_escaped_and_quotes_inside_literals_hold() -> None:
    assert to_psycopg("SELECT 10 % 3, 'it''s :x'") == "SELECT 10 %% 3, 'it''s :x'"
    assert placeholders("SELECT 'it''s :x' WHERE y = :y") == {"y"}


def test_tenant_tables_are_found_as_whole_words_outside_literals() -> None:
    tables = ("tenants", "audit_log")
    assert tables_named("select * from TENANTS t", tables) == {"tenants"}
    assert tables_named("select * from tenants_archive", tables) == set()
    assert tables_named("select 'audit_log' as name", tables) == set()
