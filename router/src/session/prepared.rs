//! Prepared statements: the router keeps each statement's text and the places of its `?`
//! markers. When the statement's route does not depend on its parameters (one logical shard
//! whatever they are, an unsharded keyspace, a reference table) and the session is not in a
//! transaction, `COM_STMT_EXECUTE` runs it as a server-side prepared statement on that
//! shard: the client's parameters go on in the binary protocol and the binary rows come back
//! as the server sent them. Otherwise the parameters are bound as SQL literals and the
//! statement is planned and routed like any query, so parameters route exactly as literals
//! do; rows then go back converted to the binary protocol.

use crate::error::SqlError;
use crate::sql::markers::markers;
use crate::wire::binary::{param_literal, quote_bytes};
use crate::wire::codec::Cursor;
use std::collections::HashMap;
use std::sync::Arc;

/// One prepared statement of a session.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Shared, so an execute that runs server-side records it without a copy.
    pub sql: Arc<str>,
    /// Byte offsets of the `?` markers.
    pub markers: Vec<usize>,
    /// Parameter types from the last execute that sent them: (type, unsigned).
    pub param_types: Arc<[(u8, bool)]>,
    /// Data sent with `COM_STMT_SEND_LONG_DATA`, by parameter.
    pub long_data: HashMap<u16, Vec<u8>>,
    /// Columns of the result, as reported at prepare time.
    pub columns: u16,
    /// The plan of the statement with its markers, when its route does not depend on them.
    pub forward: Option<ForwardPlan>,
}

/// A statement's plan with its markers, for the routing-table revision and keyspace it was
/// made for: `None` when it cannot run as a server-side prepared statement, else the plan and
/// the statement's fingerprint.
pub type ForwardPlan = (u64, Option<String>, Option<(Forward, Arc<str>)>);

/// How a prepared read can run as a server-side prepared statement.
#[derive(Debug, Clone)]
pub enum Forward {
    /// On one target whatever the parameters: this plan.
    Fixed(Arc<crate::planner::Exec>),
    /// Over logical shards chosen by the parameters (a shard key `= ?`): each execute is
    /// planned with its parameters bound as literals, and when that plan names one logical
    /// shard, this plan's statement runs there.
    ByShard(Arc<crate::planner::Exec>),
}

impl Forward {
    /// The plan with markers.
    pub fn exec(&self) -> &crate::planner::Exec {
        match self {
            Forward::Fixed(e) | Forward::ByShard(e) => e,
        }
    }
}

/// The parameters of one `COM_STMT_EXECUTE`, as sent.
pub struct Params<'a> {
    /// The NULL bitmap.
    pub nulls: &'a [u8],
    /// The values, in the binary protocol, after the types.
    pub values: &'a [u8],
}

impl Prepared {
    pub fn new(sql: String, markers: Vec<usize>, columns: u16) -> Self {
        Prepared {
            sql: sql.into(),
            markers,
            param_types: Arc::new([]),
            long_data: HashMap::new(),
            columns,
            forward: None,
        }
    }

    /// The plan to execute this statement with its markers, long data and all, when it runs
    /// on one target whatever the parameters (a read or a write; not cached: long data is
    /// rare).
    pub fn long_data_plan(
        &self,
        rt: &crate::topology::RoutingTable,
        keyspace: Option<&str>,
    ) -> Option<Arc<crate::planner::Exec>> {
        match forwardable(&self.sql, self.markers.len(), rt, keyspace, true)? {
            Forward::Fixed(e) => Some(e),
            Forward::ByShard(_) => None,
        }
    }

    /// The bytes of long data held for the next execute.
    pub fn long_data_len(&self) -> usize {
        self.long_data.values().map(Vec::len).sum()
    }

    /// The plan to execute this statement with its markers (see the module doc), or `None`
    /// when its route depends on the parameters or on session state, or it is not a read on
    /// one target. Planned once per routing-table revision and keyspace.
    pub fn forward_plan(
        &mut self,
        rt: &crate::topology::RoutingTable,
        keyspace: Option<&str>,
    ) -> Option<(&Forward, &Arc<str>)> {
        let fresh = matches!(&self.forward, Some((rev, ks, _)) if *rev == rt.revision && ks.as_deref() == keyspace);
        if !fresh {
            let plan = forwardable(&self.sql, self.markers.len(), rt, keyspace, false).map(|e| {
                let fp = crate::sql::shape::shape(&self.sql)
                    .map_or_else(|| self.sql.clone(), |s| s.key.into());
                (e, fp)
            });
            self.forward = Some((rt.revision, keyspace.map(str::to_string), plan));
        }
        self.forward
            .as_ref()
            .and_then(|(_, _, f)| f.as_ref())
            .map(|(e, fp)| (e, fp))
    }

    /// Splits a `COM_STMT_EXECUTE` body (after the statement id) into its NULL bitmap and
    /// values, remembering parameter types when the body carries them.
    ///
    /// # Errors
    /// 1210 for a malformed body; 1235 for cursors.
    pub fn split_params<'a>(&mut self, body: &'a [u8]) -> Result<Params<'a>, SqlError> {
        let bad = || SqlError::new(1210, "HY000", "Incorrect arguments to mysqld_stmt_execute");
        let mut c = Cursor::new(body);
        let flags = c.u8().ok_or_else(bad)?;
        if flags & 0x07 != 0 {
            return Err(SqlError::unsupported(
                "server-side cursors (COM_STMT_EXECUTE with a cursor type)",
            ));
        }
        let _iterations = c.u32().ok_or_else(bad)?;
        let n = self.markers.len();
        if n == 0 {
            return Ok(Params {
                nulls: &[],
                values: &[],
            });
        }
        let nulls = c.take(n.div_ceil(8)).ok_or_else(bad)?;
        let bound = c.u8().ok_or_else(bad)?;
        if bound == 1 {
            let mut types = Vec::with_capacity(n);
            for _ in 0..n {
                let t = c.u8().ok_or_else(bad)?;
                let f = c.u8().ok_or_else(bad)?;
                types.push((t, f & 0x80 != 0));
            }
            if *self.param_types != *types {
                self.param_types = types.into();
            }
        }
        if self.param_types.len() != n {
            return Err(bad());
        }
        Ok(Params {
            nulls,
            values: c.rest(),
        })
    }

    pub fn params(&self) -> usize {
        self.markers.len()
    }

    /// Decodes a `COM_STMT_EXECUTE` body (after the statement id) and returns the statement
    /// with its parameters bound as literals.
    ///
    /// # Errors
    /// 1210 for malformed parameters; 1235 for cursors.
    pub fn bind(&mut self, body: &[u8], mode: &crate::sql::lex::Mode) -> Result<Vec<u8>, SqlError> {
        let bad = || SqlError::new(1210, "HY000", "Incorrect arguments to mysqld_stmt_execute");
        let params = self.split_params(body)?;
        let n = self.markers.len();
        let mut c = Cursor::new(params.values);
        let mut literals = Vec::with_capacity(n);
        for i in 0..n {
            let is_null = params.nulls[i / 8] & (1 << (i % 8)) != 0;
            let (ty, unsigned) = self.param_types[i];
            if let Some(data) = self.long_data.get(&(i as u16)) {
                let binary = matches!(ty, 249..=252);
                literals.push(long_literal(data, binary, mode));
            } else if is_null {
                literals.push(b"NULL".to_vec());
            } else {
                literals.push(
                    param_literal(&mut c, ty, unsigned)
                        .ok_or_else(bad)?
                        .into_bytes(),
                );
            }
        }
        self.long_data.clear();
        let len = literals.iter().map(Vec::len).sum::<usize>();
        let mut out = Vec::with_capacity(self.sql.len() + len);
        let mut pos = 0;
        for (at, lit) in self.markers.iter().zip(&literals) {
            out.extend_from_slice(&self.sql.as_bytes()[pos..*at]);
            out.extend_from_slice(lit);
            pos = at + 1;
        }
        out.extend_from_slice(&self.sql.as_bytes()[pos..]);
        Ok(out)
    }
}

/// The literal of a parameter sent with `COM_STMT_SEND_LONG_DATA`: its bytes as they came,
/// quoted (`_binary'…'` for a binary type; for a string type the client's character set reads
/// them, as the server reads long data), with only the quote and (unless `sql_mode` has
/// `NO_BACKSLASH_ESCAPES`) the backslash escaped — about the data's own size, where a hex
/// literal would be twice it. In a character set whose characters may hold a quote or
/// backslash byte (`sjis`, `gbk`, `big5`), a hex literal.
fn long_literal(data: &[u8], binary: bool, mode: &crate::sql::lex::Mode) -> Vec<u8> {
    if mode.charset != crate::sql::lex::Charset::Plain {
        return quote_bytes(data, binary).into_bytes();
    }
    let mut out = Vec::with_capacity(data.len() + 16);
    if binary {
        out.extend_from_slice(b"_binary");
    }
    out.push(b'\'');
    for &b in data {
        match b {
            b'\'' => out.extend_from_slice(b"''"),
            b'\\' if !mode.no_backslash_escapes => out.extend_from_slice(b"\\\\"),
            _ => out.push(b),
        }
    }
    out.push(b'\'');
    out
}

/// How `sql` (with its `n` markers) can run as a server-side prepared statement, if it can: a
/// read with no merge and no router-side limit (so each logical shard's rows are the answer's
/// rows from that shard), whose plan is the same whatever the session's `LAST_INSERT_ID()`,
/// and whose backend text keeps all `n` markers.
fn forwardable(
    sql: &str,
    n: usize,
    rt: &crate::topology::RoutingTable,
    keyspace: Option<&str>,
    writes: bool,
) -> Option<Forward> {
    use crate::planner::{plan_session, Plan, StmtKind, Targets};
    let Ok(Plan::Exec(e)) = plan_session(sql, keyspace, 0, rt) else {
        return None;
    };
    let kind_ok = e.kind == StmtKind::Read || (writes && e.kind == StmtKind::Write);
    if !kind_ok || e.merge.is_some() || e.limit.is_some() {
        return None;
    }
    let (backend_sql, fixed) = match &e.targets {
        Targets::Ls { template, ls } => (template, ls.len() == 1),
        Targets::Reference { sql } | Targets::Any { sql } => (sql, true),
        Targets::PerLs(_) | Targets::Verbatim { .. } => return None,
    };
    if markers(backend_sql).ok()?.len() != n {
        return None;
    }
    match plan_session(sql, keyspace, 1, rt) {
        Ok(Plan::Exec(again)) if again == e => Some(if fixed {
            Forward::Fixed(Arc::from(e))
        } else {
            Forward::ByShard(Arc::from(e))
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parameters_as_literals() {
        let sql = "SELECT '?', c FROM t WHERE id = ? AND name = ? -- ?".to_string();
        let m = markers(&sql).expect("markers");
        assert_eq!(m.len(), 2);
        let mut p = Prepared::new(sql, m, 1);
        // flags, iterations, null bitmap, bound, types (LONGLONG, VAR_STRING), values
        let mut body = vec![0, 1, 0, 0, 0, 0b00, 1, 8, 0, 253, 0];
        body.extend_from_slice(&42i64.to_le_bytes());
        body.extend_from_slice(&[3, b'a', b'\'', b'b']);
        let m = crate::sql::lex::Mode::default();
        let s = p.bind(&body, &m).expect("bind");
        assert_eq!(
            s,
            b"SELECT '?', c FROM t WHERE id = 42 AND name = _utf8mb4 X'612762' -- ?"
        );
        // A second execute without types reuses them; NULL through the bitmap.
        let body = vec![0, 1, 0, 0, 0, 0b10, 0, 7, 0, 0, 0, 0, 0, 0, 0];
        let s = p.bind(&body, &m).expect("bind");
        assert_eq!(s, b"SELECT '?', c FROM t WHERE id = 7 AND name = NULL -- ?");
        assert!(p.bind(&[0, 1], &m).is_err());
        // Long data: its own bytes, quoted, with only ' and \ escaped.
        p.long_data.insert(1, vec![0, 0xff, b'\'', b'\\', b'x']);
        let body = vec![0, 1, 0, 0, 0, 0b00, 1, 8, 0, 252, 0, 9, 0, 0, 0, 0, 0, 0, 0];
        let s = p.bind(&body, &m).expect("bind");
        assert_eq!(
            s,
            b"SELECT '?', c FROM t WHERE id = 9 AND name = _binary'\x00\xff''\\\\x' -- ?"
        );
    }
}
