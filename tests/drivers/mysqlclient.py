"""The driver scenario for mysqlclient (module MySQLdb), with the driver's default options.

    python3 mysqlclient.py HOST PORT USER PASSWORD DATABASE

Prints one line per step (values, row counts, error codes), the same text whichever server
it talks to, so that a run through the router can be compared with a run on MariaDB direct.
Defaults that matter here: autocommit off, FOUND_ROWS off (affected rows are rows changed),
text protocol with parameters escaped by the driver. Multi-statements: the driver asks for
them only when its client library's version is 4.1 or later, which MariaDB Connector/C
(libmariadb 3.x, what Debian builds it with) is not, so a batch is refused by the server.
"""

import sys

import MySQLdb

host, port, user, password, database = sys.argv[1:6]

UNICODE = "h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c \U0001F600"
DOC = '{"a": 1, "b": [true, null], "s": "\u00fc"}'
BLOB = bytes(range(256))
# A batch of three statements has three results; a bound keeps a wrong "more results" flag
# from looping forever.
MAX_SETS = 5


def out(step, text):
    print(f"{step}: {text}", flush=True)


def error(e):
    if isinstance(e, MySQLdb.Error) and len(e.args) >= 2:
        return f"error {e.args[0]} {e.args[1]}"
    return f"error {type(e).__name__} {e}"


def step(name, fn):
    """Runs one step, printing what it returns, or the error it raises."""
    try:
        out(name, fn())
    except Exception as e:  # every failure is part of the comparison
        out(name, error(e))


def value(v):
    if isinstance(v, (bytes, bytearray)):
        return f"{type(v).__name__}:{bytes(v).hex()}"
    return f"{type(v).__name__}:{v!r}"


def rows(cur):
    return " | ".join(", ".join(value(v) for v in r) for r in cur.fetchall())


def warnings(conn):
    """The driver's own warning count, then SHOW WARNINGS through the driver."""
    return f"warning_count={conn.warning_count()} show_warnings={list(conn.show_warnings())}"


conn = None
try:
    conn = MySQLdb.connect(host=host, port=int(port), user=user, password=password, database=database)
    out("connect", f"ok autocommit={conn.get_autocommit()} charset={conn.character_set_name()}")
except Exception as e:
    out("connect", error(e))
    sys.exit(0)
cur = conn.cursor()


def run(sql, args=None):
    n = cur.execute(sql, args)
    return f"rowcount={n} lastrowid={cur.lastrowid} info={conn.info()!r} warnings={conn.warning_count()}"


step("drop", lambda: run("DROP TABLE IF EXISTS drv_t"))
step(
    "create",
    lambda: run("CREATE TABLE drv_t (id BIGINT PRIMARY KEY, name VARCHAR(50), doc JSON, b BLOB)"),
)
step(
    "insert_params",
    lambda: run("INSERT INTO drv_t (id, name, doc, b) VALUES (%s, %s, %s, %s)", (1, UNICODE, DOC, BLOB)),
)


def executemany():
    # The driver rewrites INSERT … VALUES with executemany into one multi-row statement.
    n = cur.executemany(
        "INSERT INTO drv_t (id, name, doc, b) VALUES (%s, %s, %s, %s)",
        [(2, "two", '{"n": 2}', b"\x00\x01"), (3, "three", None, None), (4, "four", "[]", b"")],
    )
    return f"rowcount={n} info={conn.info()!r}"


step("insert_multi", executemany)
step("commit", lambda: conn.commit() or "ok")
step("update_unchanged_one", lambda: run("UPDATE drv_t SET name = 'two' WHERE id = 2"))
step("update_unchanged_all", lambda: run("UPDATE drv_t SET name = name"))
step("commit", lambda: conn.commit() or "ok")


def select():
    cur.execute("SELECT id, name, doc, b, HEX(name) FROM drv_t ORDER BY id")
    desc = [tuple(d) for d in cur.description]
    return f"description={desc} rows={rows(cur)}"


step("select", select)


def txn(finish):
    cur.execute("INSERT INTO drv_t (id, name) VALUES (%s, %s)", (10 if finish == "commit" else 11, finish))
    getattr(conn, finish)()
    cur.execute("SELECT id, name FROM drv_t WHERE id IN (10, 11) ORDER BY id")
    return rows(cur)


step("txn_commit", lambda: txn("commit"))
step("txn_rollback", lambda: txn("rollback"))


def savepoint():
    cur.execute("INSERT INTO drv_t (id, name) VALUES (20, 'kept')")
    cur.execute("SAVEPOINT sp1")
    cur.execute("INSERT INTO drv_t (id, name) VALUES (21, 'undone')")
    cur.execute("ROLLBACK TO SAVEPOINT sp1")
    conn.commit()
    cur.execute("SELECT id, name FROM drv_t WHERE id IN (20, 21) ORDER BY id")
    return rows(cur)


step("savepoint", savepoint)


def warn_select():
    cur.execute("SELECT CAST('12abc' AS SIGNED)")
    return f"{rows(cur)} {warnings(conn)}"


def warn_insert():
    n = cur.execute("INSERT IGNORE INTO drv_t (id, name) VALUES (1, 'dup')")
    text = f"rowcount={n} {warnings(conn)}"
    conn.commit()
    return text


def show_warnings_sql():
    cur.execute("SELECT CAST('7x' AS SIGNED)")
    cur.fetchall()
    cur.execute("SHOW WARNINGS")
    return rows(cur)


step("warning_select", warn_select)
step("warning_insert_ignore", warn_insert)
step("show_warnings", show_warnings_sql)


def multi():
    # Every result set, in order, where the driver asked for multi-statements (see above).
    cur.execute("SELECT 1 AS a; UPDATE drv_t SET name = 'multi' WHERE id = 3; SELECT name FROM drv_t WHERE id = 3")
    sets = []
    while True:
        sets.append(f"[rowcount={cur.rowcount} rows={rows(cur)}]")
        if not cur.nextset():
            break
        if len(sets) == MAX_SETS:
            sets.append(f"(more than {MAX_SETS} results)")
            break
    conn.commit()
    return " ".join(sets)


step("multi_statement", multi)


def duplicate():
    try:
        cur.execute("INSERT INTO drv_t (id, name) VALUES (2, 'again')")
        return "no error"
    finally:
        conn.rollback()


step("duplicate_key", duplicate)


def session():
    cur.execute("SELECT @@autocommit, @@character_set_client, @@sql_mode")
    return rows(cur)


step("session", session)
step("close", lambda: conn.close() or "ok")
