//! `INSERT` and `REPLACE`: rows routed by their shard key, split per logical shard.

use super::keys::{key_value, lit};
use super::plan;
use super::plan::{Exec, Local, Plan, RouteKind, StmtKind, Targets};
use super::resolve::Planner;

use crate::error::SqlError;
use crate::sql::rewrite::Edits;
use crate::sql::LS_PLACEHOLDER;
use crate::topology::TableRouting;
use crate::vindex::{self};
use sqlparser::ast::Spanned;
use sqlparser::ast::{Expr, SetExpr, Statement, TableObject};

impl<'a> Planner<'a> {
    /// `INSERT … SELECT` with a sharded table on either side: the statement split around its
    /// select, for the engine to read the rows and write them as routed inserts.
    fn insert_select(
        &self,
        ins: &sqlparser::ast::Insert,
        source: &sqlparser::ast::Query,
        ks: &crate::topology::KeyspaceRouting,
    ) -> Result<Plan, SqlError> {
        if ins.columns.is_empty() {
            return Err(SqlError::unsupported(
                "INSERT ... SELECT with sharded tables and without a column list",
            ));
        }
        let (start, _) = self
            .offsets
            .range(self.sql, source.span())
            .ok_or_else(|| SqlError::router("cannot locate the SELECT of an INSERT"))?;
        // The select runs to `ON DUPLICATE KEY UPDATE`, or to the end.
        let sql = self.sql.as_bytes();
        let toks = crate::sql::lex::significant(sql, &Default::default());
        let end = toks
            .windows(4)
            .find(|w| {
                w[0].start >= start
                    && ["ON", "DUPLICATE", "KEY", "UPDATE"]
                        .iter()
                        .zip(w.iter())
                        .all(|(k, t)| t.is_word(sql, k))
            })
            .map_or(self.sql.trim_end().len(), |w| w[0].start);
        let end = self.sql[..end].trim_end().len();
        // `INSERT INTO t (a) (SELECT …)`: the parentheses are the select's.
        let mut start = start;
        while self.sql[..start].trim_end().ends_with('(') {
            start = self.sql[..start].trim_end().len() - 1;
        }
        let (head, select, tail) = (&self.sql[..start], &self.sql[start..end], &self.sql[end..]);
        Ok(Plan::Local(Local::InsertSelect(Box::new(
            plan::InsertSelect {
                keyspace: ks.name.clone(),
                head: head.to_string(),
                select: select.to_string(),
                tail: tail.to_string(),
            },
        ))))
    }

    pub(super) fn insert(&self, stmt: &Statement) -> Result<Plan, SqlError> {
        let Statement::Insert(ins) = stmt else {
            return Err(SqlError::router("not an INSERT"));
        };
        let r = self.resolve(stmt)?;
        let Some(ks) = r.ks else {
            return Err(SqlError::unsupported("writes to system schemas"));
        };
        let TableObject::TableName(_) = &ins.table else {
            return Err(SqlError::unsupported("INSERT INTO a table function"));
        };
        let Some(target) = r.tables.first().cloned() else {
            return Err(SqlError::router("INSERT without a table"));
        };
        if let Some(source) = &ins.source {
            if !matches!(source.body.as_ref(), SetExpr::Values(_)) && r.sharded().count() > 0 {
                return self.insert_select(ins, source, ks);
            }
        }
        if r.sharded().count() > 0 && r.tables.len() > 1 {
            return Err(SqlError::unsupported(
                "INSERT ... SELECT with sharded tables",
            ));
        }
        let TableRouting::Sharded {
            shard_key,
            vindex,
            key_type,
            auto_increment,
            lookups,
        } = &target.routing
        else {
            let sql = self.qualified(&r, Edits::default())?;
            return Ok(self.exec_for(ks, &r, sql, StmtKind::Write, None, None, false));
        };
        if !ins.assignments.is_empty() {
            return Err(SqlError::unsupported(
                "INSERT ... SET on a sharded table (use VALUES)",
            ));
        }
        if let Some((col, seq_ks, seq_table)) = auto_increment {
            if !ins
                .columns
                .iter()
                .any(|c| c.value.eq_ignore_ascii_case(col))
            {
                // Ids come from the sequence: the engine takes a block, writes them into the
                // statement, and plans it again.
                let Some(last) = ins.columns.last() else {
                    return Err(SqlError::router(format!(
                        "INSERT into {} needs a column list",
                        target.name
                    )));
                };
                let col_at = self
                    .offsets
                    .range(self.sql, last.span)
                    .map(|(_, e)| e)
                    .ok_or_else(|| SqlError::router("cannot locate the column list"))?;
                let Some(source) = &ins.source else {
                    return Err(SqlError::unsupported(
                        "INSERT without VALUES on a sharded table",
                    ));
                };
                let SetExpr::Values(values) = source.body.as_ref() else {
                    return Err(SqlError::unsupported(
                        "INSERT ... SELECT into a sharded table",
                    ));
                };
                let mut row_ends = Vec::with_capacity(values.rows.len());
                let closers = paren_closers(self.sql);
                for row in &values.rows {
                    let (_, b) = self.row_range(row, &closers)?;
                    row_ends.push(b - 1);
                }
                return Ok(Plan::Local(Local::Sequence(Box::new(
                    plan::SequenceInsert {
                        column: col.to_string(),
                        keyspace: seq_ks.to_string(),
                        table: seq_table.clone(),
                        column_at: col_at,
                        row_ends,
                        sql: self.sql.to_string(),
                    },
                ))));
            }
        }
        let Some(idx) = ins
            .columns
            .iter()
            .position(|c| c.value.eq_ignore_ascii_case(shard_key))
        else {
            return Err(SqlError::unsupported(format!(
                "INSERT into sharded table {} without its shard key column {} in the column list",
                target.name, shard_key
            )));
        };
        if let Some(sqlparser::ast::OnInsert::DuplicateKeyUpdate(assigns)) = &ins.on {
            for a in assigns {
                if a.target
                    .to_string()
                    .trim_matches('`')
                    .eq_ignore_ascii_case(shard_key)
                {
                    return Err(SqlError::unsupported(
                        "ON DUPLICATE KEY UPDATE of the shard key",
                    ));
                }
            }
        }
        let Some(source) = &ins.source else {
            return Err(SqlError::unsupported(
                "INSERT without VALUES on a sharded table",
            ));
        };
        let SetExpr::Values(values) = source.body.as_ref() else {
            return Err(SqlError::unsupported(
                "INSERT ... SELECT into a sharded table",
            ));
        };
        if let Some(sqlparser::ast::OnInsert::DuplicateKeyUpdate(assigns)) = &ins.on {
            for a in assigns {
                let t = a.target.to_string();
                let t = t.rsplit('.').next().unwrap_or(&t).trim_matches('`');
                if let Some(l) = lookups.iter().find(|l| l.column.eq_ignore_ascii_case(t)) {
                    return Err(SqlError::unsupported(format!(
                        "ON DUPLICATE KEY UPDATE of {}, a column with a lookup vindex",
                        l.column
                    )));
                }
            }
        }
        // Each lookup column's place in the row.
        let lookup_at: Vec<usize> = lookups
            .iter()
            .map(|l| {
                ins.columns
                    .iter()
                    .position(|c| c.value.eq_ignore_ascii_case(&l.column))
                    .ok_or_else(|| {
                        SqlError::unsupported(format!(
                            "INSERT into {} without a value for {}, a column with a lookup vindex",
                            target.name, l.column
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        let mut ksids = Vec::with_capacity(values.rows.len());
        let mut per_ls: Vec<(u32, Vec<usize>)> = Vec::new();
        let mut row_ranges = Vec::with_capacity(values.rows.len());
        let closers = paren_closers(self.sql);
        for (i, row) in values.rows.iter().enumerate() {
            let Some(v) = row.get(idx) else {
                return Err(SqlError::new(
                    1136,
                    "21S01",
                    format!("Column count doesn't match value count at row {}", i + 1),
                ));
            };
            let val = lit(v)
                .and_then(|l| key_value(&l, *key_type, true))
                .ok_or_else(|| {
                    SqlError::router(format!(
                        "the shard key {shard_key} of row {} must be a literal value, got {v}",
                        i + 1
                    ))
                })?;
            let id = vindex::keyspace_id(*vindex, &val)
                .map_err(|e| SqlError::router(format!("row {}: {e}", i + 1)))?;
            let ls = vindex::logical_shard(id, ks.logical_shards);
            ksids.push((id, ls));
            match per_ls.iter_mut().find(|(l, _)| *l == ls) {
                Some((_, rows)) => rows.push(i),
                None => per_ls.push((ls, vec![i])),
            }
            row_ranges.push(self.row_range(row, &closers)?);
        }
        let conflict = if ins.replace_into {
            Some("REPLACE")
        } else if ins.ignore {
            Some("INSERT IGNORE")
        } else if matches!(
            ins.on,
            Some(sqlparser::ast::OnInsert::DuplicateKeyUpdate(_))
        ) {
            Some("INSERT … ON DUPLICATE KEY UPDATE")
        } else {
            None
        }
        .map(|action| {
            Box::new(plan::Conflict {
                table: target.name.to_string(),
                shard_key: shard_key.to_string(),
                action,
                lookups: lookups
                    .iter()
                    .filter(|l| l.unique && l.serves())
                    .map(|l| l.column.clone())
                    .collect(),
            })
        });
        if !lookups.is_empty() {
            let mut rows = Vec::with_capacity(values.rows.len());
            for (i, row) in values.rows.iter().enumerate() {
                let mut vals = Vec::with_capacity(lookups.len());
                for (l, &at) in lookups.iter().zip(&lookup_at) {
                    let v = row.get(at).ok_or_else(|| {
                        SqlError::new(
                            1136,
                            "21S01",
                            format!("Column count doesn't match value count at row {}", i + 1),
                        )
                    })?;
                    let is_null = matches!(
                        v,
                        Expr::Value(x) if matches!(x.value, sqlparser::ast::Value::Null)
                    );
                    if is_null {
                        vals.push(None);
                        continue;
                    }
                    let l = lit(v).ok_or_else(|| {
                        SqlError::unsupported(format!(
                            "a value of {} (a column with a lookup vindex) that is not a literal, in row {}",
                            l.column,
                            i + 1
                        ))
                    })?;
                    vals.push(Some(plan::KeyLiteral::from(l)));
                }
                let (a, b) = row_ranges[i];
                let (ksid, ls) = ksids[i];
                rows.push(plan::LookupRow {
                    text: self.sql[a..b].to_string(),
                    ls,
                    ksid,
                    values: vals,
                });
            }
            let (head, tail) = self.insert_ends(&target, &row_ranges)?;
            let action = if ins.replace_into {
                plan::InsertAction::Replace
            } else if ins.ignore {
                plan::InsertAction::Ignore
            } else if ins.on.is_some() {
                plan::InsertAction::Upsert
            } else {
                plan::InsertAction::Insert
            };
            return Ok(Plan::Local(Local::Lookup(Box::new(plan::LookupPlan {
                exec: Exec {
                    conflict,
                    ..Exec::plain(
                        Some(ks.name.clone()),
                        StmtKind::Write,
                        RouteKind::Several,
                        Targets::PerLs(Vec::new()),
                    )
                },
                keyspace: ks.name.clone(),
                table: target.name.clone(),
                route: None,
                write: plan::LookupWrite::Insert(Box::new(plan::LookupInsert {
                    action,
                    head,
                    tail,
                    rows,
                    lookups: lookups.to_vec(),
                })),
            }))));
        }
        let sql = self.qualified(&r, Edits::default())?;
        if per_ls.len() == 1 {
            let ls = per_ls.iter().map(|(l, _)| *l).collect();
            let mut plan = self.exec_for(ks, &r, sql, StmtKind::Write, Some(ls), None, false);
            if let Plan::Exec(e) = &mut plan {
                e.conflict = conflict;
            }
            return Ok(plan);
        }
        // Split: the text before the first row and after the last stays; the rows are picked.
        let (head_q, tail) = self.insert_ends(&target, &row_ranges)?;
        let tail = tail.as_str();
        let mut out = Vec::with_capacity(per_ls.len());
        for (ls, rows) in per_ls {
            let mut s = String::with_capacity(self.sql.len());
            s.push_str(&head_q);
            for (n, i) in rows.iter().enumerate() {
                if n > 0 {
                    s.push_str(", ");
                }
                let (a, b) = row_ranges[*i];
                s.push_str(&self.sql[a..b]);
            }
            s.push_str(tail);
            out.push((ls, s));
        }
        let _ = sql;
        Ok(Plan::Exec(Box::new(Exec {
            conflict,
            ..Exec::plain(
                Some(ks.name.clone()),
                StmtKind::Write,
                RouteKind::Several,
                Targets::PerLs(out),
            )
        })))
    }

    /// The text of an `INSERT` before its first row (the table qualified with the
    /// logical-shard placeholder) and after its last.
    fn insert_ends(
        &self,
        target: &super::resolve::TableRef,
        row_ranges: &[(usize, usize)],
    ) -> Result<(String, String), SqlError> {
        let (Some(first), Some(last)) = (row_ranges.first(), row_ranges.last()) else {
            return Err(SqlError::router("INSERT without rows"));
        };
        let mut e = Edits::default();
        e.replace(
            target.qualify.0,
            target.qualify.1,
            format!("{LS_PLACEHOLDER}."),
        );
        let head = e.apply(&self.sql[..first.0])?;
        Ok((head, self.sql[last.1..].to_string()))
    }

    /// Returns the byte range of one `VALUES` row, parentheses included.
    pub(super) fn row_range(
        &self,
        row: &[Expr],
        closers: &crate::FastMap<usize, usize>,
    ) -> Result<(usize, usize), SqlError> {
        let err = || SqlError::router("cannot locate a row of the INSERT");
        let first = row.first().ok_or_else(err)?;
        let (s, _) = self.offsets.range(self.sql, first.span()).ok_or_else(err)?;
        let bytes = self.sql.as_bytes();
        let mut a = s;
        while a > 0
            && (bytes[a - 1].is_ascii_whitespace() || bytes[a - 1] == b'-' || bytes[a - 1] == b'+')
        {
            a -= 1;
        }
        if a == 0 || bytes[a - 1] != b'(' {
            return Err(err());
        }
        a -= 1;
        // The row ends at the `)` that closes its `(`, as the lexer pairs them (expressions'
        // own parentheses, quotes and comments inside skipped whole).
        let b = *closers.get(&a).ok_or_else(err)?;
        Ok((a, b))
    }
}

/// For each `(` of `sql` (its byte offset), the offset just past its matching `)`.
pub(super) fn paren_closers(sql: &str) -> crate::FastMap<usize, usize> {
    use crate::sql::lex::Kind;
    let b = sql.as_bytes();
    let mut open = Vec::new();
    let mut out = crate::FastMap::default();
    for t in crate::sql::lex::significant(b, &Default::default()) {
        if t.kind != Kind::Punct {
            continue;
        }
        match b[t.start] {
            b'(' => open.push(t.start),
            b')' => {
                if let Some(o) = open.pop() {
                    out.insert(o, t.end);
                }
            }
            _ => {}
        }
    }
    out
}

/// Statements at least this long that insert rows of literals into a sharded table are
/// split by [`fast_insert`] without parsing their rows.
pub(super) const FAST_INSERT_BYTES: usize = 32 * 1024;

/// An `INSERT`/`REPLACE … VALUES` of many rows of plain literals into a sharded table (what a
/// dump holds), planned without handing its rows to the SQL parser: the statement up to the end
/// of its first row is planned as usual (names, shard key, unique keys, everything the planner
/// checks), and the rows are found by the lexer and routed by their shard key's literal, as
/// [`Planner::insert`] routes them. `None` (plan it whole) for anything else: a statement that
/// does not end with its last row, rows holding anything but literals, `NULL` and `DEFAULT`, a
/// shard key that is not a plain number or string, a row of another length, a table with
/// lookup vindexes or a sequence, a first row that routes otherwise.
pub(super) fn fast_insert(
    sql: &str,
    keyspace: Option<&str>,
    last_insert_id: u64,
    rt: &crate::topology::RoutingTable,
) -> Option<Result<Plan, SqlError>> {
    use crate::sql::lex::{Kind, Token};
    use crate::sql::rewrite::Offsets;
    // Other long statements are not lexed here (a comment before the verb: planned whole).
    let head = sql.trim_start().as_bytes();
    let starts = |w: &str| {
        head.get(..w.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(w.as_bytes()))
    };
    if !(starts("INSERT") || starts("REPLACE")) {
        return None;
    }
    let b = sql.as_bytes();
    let toks = crate::sql::lex::significant(b, &Default::default());
    let first = toks.first()?;
    if !(first.is_word(b, "INSERT") || first.is_word(b, "REPLACE")) {
        return None;
    }
    let punct = |t: &Token, c: u8| t.kind == Kind::Punct && b[t.start] == c;
    // `VALUES` at depth 0, then rows.
    let mut depth = 0i32;
    let mut at = None;
    for (i, t) in toks.iter().enumerate() {
        if punct(t, b'(') {
            depth += 1;
        } else if punct(t, b')') {
            depth -= 1;
        } else if depth == 0 && (t.is_word(b, "VALUES") || t.is_word(b, "VALUE")) {
            at = Some(i + 1);
            break;
        } else if depth == 0 && (t.is_word(b, "SELECT") || t.is_word(b, "SET")) {
            return None;
        }
    }
    let mut i = at?;
    // Each row: its byte range and the token ranges of its items.
    type Row = (usize, usize, Vec<(usize, usize)>);
    let mut rows: Vec<Row> = Vec::new();
    loop {
        let open = toks.get(i)?;
        if !punct(open, b'(') {
            return None;
        }
        let mut items = Vec::new();
        let mut item_start = i + 1;
        let mut depth = 1;
        let mut j = i + 1;
        let close = loop {
            let t = toks.get(j)?;
            let literal = match t.kind {
                Kind::Number | Kind::String | Kind::Hex | Kind::Bits => true,
                Kind::Punct => matches!(b[t.start], b'(' | b')' | b',' | b'-' | b'+' | b'.'),
                Kind::Word => {
                    ["NULL", "TRUE", "FALSE", "DEFAULT"]
                        .iter()
                        .any(|w| t.is_word(b, w))
                        // A character set introducer before a string.
                        || b[t.start] == b'_'
                            && toks.get(j + 1).is_some_and(|n| n.kind == Kind::String)
                }
                _ => false,
            };
            if !literal {
                return None;
            }
            if punct(t, b'(') {
                depth += 1;
            } else if punct(t, b')') {
                depth -= 1;
                if depth == 0 {
                    items.push((item_start, j));
                    break j;
                }
            } else if depth == 1 && punct(t, b',') {
                items.push((item_start, j));
                item_start = j + 1;
            }
            j += 1;
        };
        rows.push((open.start, toks[close].end, items));
        match toks.get(close + 1) {
            Some(t) if punct(t, b',') => i = close + 2,
            None => break,
            Some(_) => return None,
        }
    }
    if rows.len() < 2 {
        return None;
    }
    // The statement with its first row only, planned as usual.
    let head_end = rows[0].1;
    let mini = &sql[..head_end];
    let stmt = super::ast::parse_one(mini).ok()?;
    let Statement::Insert(ins) = &stmt else {
        return None;
    };
    if ins.on.is_some() || ins.returning.is_some() {
        return None;
    }
    let p = Planner {
        sql: mini,
        offsets: Offsets::new(mini),
        session_ks: keyspace,
        rt,
        last_insert_id,
    };
    let r = p.resolve(&stmt).ok()?;
    let ks = r.ks?;
    let target = r.tables.first()?.clone();
    if r.tables.len() != 1 {
        return None;
    }
    let TableRouting::Sharded {
        shard_key,
        vindex,
        key_type,
        lookups,
        ..
    } = &target.routing
    else {
        return None;
    };
    if !lookups.is_empty() {
        return None;
    }
    let idx = ins
        .columns
        .iter()
        .position(|c| c.value.eq_ignore_ascii_case(shard_key))?;
    let plan = match p.statement(stmt.clone()) {
        Ok(p) => p,
        Err(e) => return Some(Err(e)),
    };
    let Plan::Exec(e) = plan else {
        return None;
    };
    if !matches!(&e.targets, Targets::Ls { ls, .. } if ls.len() == 1) {
        return None;
    }
    // Each row's logical shard, by its shard key's literal.
    let mut per_ls: Vec<(u32, Vec<usize>)> = Vec::new();
    for (n, (_, _, items)) in rows.iter().enumerate() {
        if items.len() != ins.columns.len() {
            return None;
        }
        let (s, e) = items[idx];
        let key = &toks[s..e];
        let (neg, t) = match key {
            [t] => (false, t),
            [m, t] if punct(m, b'-') => (true, t),
            _ => return None,
        };
        let text = std::str::from_utf8(&b[t.start..t.end]).ok()?;
        let l = match t.kind {
            Kind::Number if text.bytes().all(|c| c.is_ascii_digit()) => {
                let v: i128 = text.parse().ok()?;
                super::keys::Lit::Int(if neg { -v } else { v })
            }
            Kind::Number if text.bytes().all(|c| c.is_ascii_digit() || c == b'.') => {
                super::keys::Lit::Num(if neg {
                    format!("-{text}")
                } else {
                    text.to_string()
                })
            }
            // A quoted string without escapes: its value is what is between the quotes.
            Kind::String
                if !neg
                    && text.len() >= 2
                    && text.starts_with('\'')
                    && !text[1..text.len() - 1].contains(['\'', '\\']) =>
            {
                super::keys::Lit::Str(text[1..text.len() - 1].to_string())
            }
            _ => return None,
        };
        let val = key_value(&l, *key_type, true)?;
        let id = vindex::keyspace_id(*vindex, &val).ok()?;
        let ls = vindex::logical_shard(id, ks.logical_shards);
        match per_ls.iter_mut().find(|(l, _)| *l == ls) {
            Some((_, r)) => r.push(n),
            None => per_ls.push((ls, vec![n])),
        }
    }
    // The text before the first row (the table qualified) and the rows, per logical shard.
    let mut edits = Edits::default();
    edits.replace(
        target.qualify.0,
        target.qualify.1,
        format!("{LS_PLACEHOLDER}."),
    );
    let head = match edits.apply(&sql[..rows[0].0]) {
        Ok(h) => h,
        Err(e) => return Some(Err(e.into())),
    };
    let out: Vec<(u32, String)> = per_ls
        .into_iter()
        .map(|(ls, picked)| {
            let mut s = String::with_capacity(head.len() + sql.len() / 4);
            s.push_str(&head);
            for (n, i) in picked.iter().enumerate() {
                if n > 0 {
                    s.push_str(", ");
                }
                s.push_str(&sql[rows[*i].0..rows[*i].1]);
            }
            (ls, s)
        })
        .collect();
    Some(Ok(Plan::Exec(Box::new(Exec {
        conflict: e.conflict,
        ..Exec::plain(
            Some(ks.name.clone()),
            StmtKind::Write,
            RouteKind::Several,
            Targets::PerLs(out),
        )
    }))))
}
