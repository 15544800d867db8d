// The driver scenario for Node's mysql2, with the driver's default options.
//
//     node mysql2.js HOST PORT USER PASSWORD DATABASE
//
// Prints one line per step (values, row counts, error codes), the same text whichever server
// it talks to, so that a run through the router can be compared with a run on MariaDB direct.
// Defaults that matter here: autocommit as the server has it (on), multipleStatements off,
// FOUND_ROWS on (affected rows are rows matched), query() escapes parameters in the client,
// execute() prepares on the server (binary protocol).

'use strict';

const mysql = require('mysql2/promise');

const [host, port, user, password, database] = process.argv.slice(2, 7);

const UNICODE = 'h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c \u{1F600}';
const DOC = '{"a": 1, "b": [true, null], "s": "\u00fc"}';
const BLOB = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

function out(step, text) {
  process.stdout.write(`${step}: ${text}\n`);
}

function error(e) {
  if (e && e.errno !== undefined) {
    return `error ${e.errno} ${e.code} ${e.sqlState} ${e.sqlMessage}`;
  }
  return `error ${e && e.name} ${e && e.message}`;
}

// Runs one step, printing what it returns, or the error it raises.
async function step(name, fn) {
  try {
    out(name, await fn());
  } catch (e) {
    out(name, error(e));
  }
}

function value(v) {
  if (v === null) return 'null';
  if (Buffer.isBuffer(v)) return `Buffer:${v.toString('hex')}`;
  return `${typeof v}:${JSON.stringify(v)}`;
}

function header(r) {
  return (
    `affectedRows=${r.affectedRows} changedRows=${r.changedRows} insertId=${r.insertId} ` +
    `info=${JSON.stringify(r.info)} serverStatus=${r.serverStatus} warningStatus=${r.warningStatus}`
  );
}

// A result as text: an OK packet's header, or the rows of a result set.
function result(r) {
  if (Array.isArray(r)) return r.map((row) => row.map(value).join(', ')).join(' | ');
  return header(r);
}

// Column definitions; extendedFormat is MariaDB's extended metadata ('json' for a JSON
// column, which mysql2 then parses into an object).
function fields(fs) {
  return fs
    .map(
      (f) =>
        `${f.name}:${f.columnType}/${f.characterSet}/${f.columnLength}/${f.flags}/${f.decimals}` +
        `/${f.extendedTypeName || ''}/${f.extendedFormat || ''}`,
    )
    .join(' ');
}

async function main() {
  let conn;
  try {
    conn = await mysql.createConnection({ host, port: Number(port), user, password, database });
    out('connect', 'ok');
  } catch (e) {
    out('connect', error(e));
    return;
  }
  // Rows as arrays keep the column order in what is printed.
  const q = async (sql, args) => (await conn.query({ sql, rowsAsArray: true }, args))[0];
  const x = async (sql, args) => (await conn.execute({ sql, rowsAsArray: true }, args))[0];

  await step('drop', async () => result(await q('DROP TABLE IF EXISTS drv_t')));
  await step('create', async () =>
    result(await q('CREATE TABLE drv_t (id BIGINT PRIMARY KEY, name VARCHAR(50), doc JSON, b BLOB)')),
  );
  await step('insert_params', async () =>
    result(await x('INSERT INTO drv_t (id, name, doc, b) VALUES (?, ?, ?, ?)', [1, UNICODE, DOC, BLOB])),
  );
  // query() expands a nested array after VALUES into a multi-row insert.
  await step('insert_multi', async () =>
    result(
      await q('INSERT INTO drv_t (id, name, doc, b) VALUES ?', [
        [
          [2, 'two', '{"n": 2}', Buffer.from([0, 1])],
          [3, 'three', null, null],
          [4, 'four', '[]', Buffer.alloc(0)],
        ],
      ]),
    ),
  );
  await step('update_unchanged_one', async () => result(await q("UPDATE drv_t SET name = 'two' WHERE id = 2")));
  await step('update_unchanged_all', async () => result(await q('UPDATE drv_t SET name = name')));
  await step('update_unchanged_prepared', async () =>
    result(await x('UPDATE drv_t SET name = ? WHERE id = ?', ['two', 2])),
  );
  await step('select', async () => {
    const [rows, fs] = await conn.query({
      sql: 'SELECT id, name, doc, b, HEX(name) FROM drv_t ORDER BY id',
      rowsAsArray: true,
    });
    return `fields=${fields(fs)} rows=${result(rows)}`;
  });
  await step('select_prepared', async () => {
    const [rows, fs] = await conn.execute({ sql: 'SELECT id, name, doc, b FROM drv_t WHERE id = ?', rowsAsArray: true }, [1]);
    return `fields=${fields(fs)} rows=${result(rows)}`;
  });
  const txn = async (id, finish) => {
    await conn.beginTransaction();
    const ins = await q('INSERT INTO drv_t (id, name) VALUES (?, ?)', [id, finish]);
    await conn[finish]();
    return `${header(ins)} rows=${result(await q('SELECT id, name FROM drv_t WHERE id IN (10, 11) ORDER BY id'))}`;
  };
  // Inside a transaction, reads keep the server's column definitions too (a JSON column
  // parsed into an object): on one logical shard, over all of them, and prepared.
  await step('txn_select', async () => {
    await conn.beginTransaction();
    const [one, f1] = await conn.query({ sql: 'SELECT id, doc FROM drv_t WHERE id = 1', rowsAsArray: true });
    const [all, f2] = await conn.query({ sql: 'SELECT id, doc FROM drv_t ORDER BY id', rowsAsArray: true });
    const [prep, f3] = await conn.execute({ sql: 'SELECT id, doc FROM drv_t WHERE id = ?', rowsAsArray: true }, [2]);
    await conn.commit();
    return (
      `one=${fields(f1)} ${result(one)} all=${fields(f2)} ${result(all)} ` +
      `prepared=${fields(f3)} ${result(prep)}`
    );
  });
  await step('txn_commit', () => txn(10, 'commit'));
  await step('txn_rollback', () => txn(11, 'rollback'));
  await step('savepoint', async () => {
    await conn.beginTransaction();
    await q("INSERT INTO drv_t (id, name) VALUES (20, 'kept')");
    await q('SAVEPOINT sp1');
    await q("INSERT INTO drv_t (id, name) VALUES (21, 'undone')");
    await q('ROLLBACK TO SAVEPOINT sp1');
    await conn.commit();
    return result(await q('SELECT id, name FROM drv_t WHERE id IN (20, 21) ORDER BY id'));
  });
  // mysql2 reports a statement's warning count on OK packets (warningStatus); the warnings
  // themselves are read with SHOW WARNINGS.
  await step('warning_select', async () => {
    const got = result(await q("SELECT CAST('12abc' AS SIGNED)"));
    return `${got} show_warnings=${result(await q('SHOW WARNINGS'))}`;
  });
  await step('warning_insert_ignore', async () => {
    const got = result(await q("INSERT IGNORE INTO drv_t (id, name) VALUES (1, 'dup')"));
    return `${got} show_warnings=${result(await q('SHOW WARNINGS'))}`;
  });
  // multipleStatements is off by default: the server refuses the batch.
  await step('multi_statement', async () => {
    const [sets] = await conn.query(
      "SELECT 1 AS a; UPDATE drv_t SET name = 'multi' WHERE id = 3; SELECT name FROM drv_t WHERE id = 3",
    );
    return JSON.stringify(sets);
  });
  await step('duplicate_key', async () => {
    await q("INSERT INTO drv_t (id, name) VALUES (2, 'again')");
    return 'no error';
  });
  await step('session', async () => result(await q('SELECT @@autocommit, @@character_set_client, @@sql_mode')));
  // Session state tracking: what OK packets say changed (mysql2 asks for it by default).
  await step('session_track', async () => {
    // MariaDB reports one statement's variables in no fixed order: sorted by name here.
    const st = (r) => {
      if (!r.stateChanges) return 'null';
      const vars = r.stateChanges.systemVariables;
      const sorted = Object.keys(vars)
        .sort()
        .map((k) => `${k}=${JSON.stringify(vars[k])}`);
      return (
        `vars[${sorted.join(', ')}] schema=${r.stateChanges.schema}` +
        ` state=${r.stateChanges.trackStateChange}`
      );
    };
    const seen = [];
    seen.push(st(await q('SET NAMES utf8mb4')));
    seen.push(st(await q("SET time_zone = '+02:00', sql_mode = 'ANSI_QUOTES'")));
    seen.push(st(await q('SET autocommit = 1')));
    seen.push(st(await q(`USE ${database}`)));
    seen.push(st(await q("SET session_track_system_variables = 'time_zone,sql_mode'")));
    seen.push(st(await q("SET time_zone = '+03:00', sql_mode = ''")));
    seen.push(st(await q('SET @v = 1')));
    // With session_track_state_change on, a statement that changes the session says so.
    seen.push(st(await q('SET session_track_state_change = ON')));
    seen.push(st(await q('SET @w = 2')));
    seen.push(st(await q("UPDATE drv_t SET name = name WHERE id = 1")));
    seen.push(st(await q(`USE ${database}`)));
    seen.push(st(await q('SET autocommit = 1')));
    seen.push(st(await q("SET time_zone = '+04:00'")));
    seen.push(st(await q('DO 1')));
    return seen.join(' ; ');
  });
  await step('close', async () => {
    await conn.end();
    return 'ok';
  });
}

main().then(
  () => process.exit(0),
  (e) => {
    out('fatal', error(e));
    process.exit(0);
  },
);
