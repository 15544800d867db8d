//! Executing a cross-shard join (see `planner/crossjoin.rs`): read the left side, look its
//! distinct join keys up on the right side in batches, pair the rows.

use super::merge::{kind_of, Kind};
use super::results::{column_def, write_columns, write_end};
use super::Engine;
use crate::backend::error::from_backend;
use crate::error::io_err;
use crate::error::SqlError;
use crate::planner::{CrossJoin, Exec, Plan, Targets};
use crate::session::Session;
use crate::topology::RoutingTable;
use crate::wire::resultset::{self, ColumnDef};
use crate::wire::PacketIo;
use mysql_async::Value;
use std::collections::HashMap;

/// Keys per right-side lookup.
const BATCH: usize = 200;
/// Most rows one side of a cross-shard join may return.
const MAX_ROWS: usize = 200_000;

type Cell = Option<Vec<u8>>;

impl Engine {
    pub(super) async fn cross_join(
        &self,
        session: &mut Session,
        cj: CrossJoin,
        io: &mut PacketIo,
    ) -> Result<(), SqlError> {
        let rt = self.topo.table();
        let (ldefs, lrows) = self
            .collect_sql(session, &rt, &cj.keyspace, &cj.left_sql)
            .await?;
        let key_kind = ldefs
            .get(cj.left_key)
            .map(|d| kind_of(d.column_type))
            .unwrap_or(Kind::Str);
        // Distinct non-NULL keys, in first-seen order.
        let mut keys: Vec<&[u8]> = Vec::new();
        let mut key_index: HashMap<&[u8], usize> = HashMap::new();
        for r in &lrows {
            if let Some(Some(k)) = r.get(cj.left_key) {
                if !key_index.contains_key(k.as_slice()) {
                    key_index.insert(k.as_slice(), keys.len());
                    keys.push(k.as_slice());
                }
            }
        }
        // Right rows by the left key they match (MariaDB decides equality).
        let mut matches: Vec<Vec<usize>> = vec![Vec::new(); keys.len()];
        let mut rrows: Vec<Vec<Cell>> = Vec::new();
        let mut rdefs: Option<Vec<ColumnDef>> = None;
        let batches: Vec<&[&[u8]]> = if keys.is_empty() {
            vec![&[]]
        } else {
            keys.chunks(BATCH).collect()
        };
        for (b, batch) in batches.iter().enumerate() {
            let lits: Vec<String> = batch.iter().map(|k| literal(k, key_kind)).collect();
            let marks: Vec<String> = lits
                .iter()
                .enumerate()
                .map(|(i, l)| format!("IF({} = {l}, '{i}', NULL)", cj.right_key))
                .collect();
            let mut conds = vec![format!(
                "{} IN ({})",
                cj.right_key,
                if lits.is_empty() {
                    "NULL".to_string()
                } else {
                    lits.join(", ")
                }
            )];
            conds.extend(cj.right_where.iter().cloned());
            let mut items = vec![format!(
                "CONCAT_WS(',', {}) AS `__tessera_m`",
                if marks.is_empty() {
                    "NULL".to_string()
                } else {
                    marks.join(", ")
                }
            )];
            items.extend(cj.right_items.iter().cloned());
            let sql = format!(
                "SELECT {} FROM {} WHERE {}",
                items.join(", "),
                cj.right_from,
                conds.join(" AND ")
            );
            let (defs, rows) = self.collect_sql(session, &rt, &cj.keyspace, &sql).await?;
            if rdefs.is_none() {
                rdefs = Some(defs);
            }
            for mut r in rows {
                let m = r.remove(0);
                let idx = rrows.len();
                if let Some(m) = m {
                    for i in m.split(|c| *c == b',') {
                        let i: usize = std::str::from_utf8(i)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| SqlError::router("cross-shard join: bad match list"))?;
                        if let Some(v) = matches.get_mut(b * BATCH + i) {
                            v.push(idx);
                        }
                    }
                }
                rrows.push(r);
                if rrows.len() > MAX_ROWS {
                    return Err(too_many());
                }
            }
        }
        let mut rdefs = rdefs.unwrap_or_default();
        if !rdefs.is_empty() {
            rdefs.remove(0);
        }
        if cj.left_outer {
            for d in &mut rdefs {
                d.flags &= !1; // NOT_NULL
            }
        }
        let defs: Vec<ColumnDef> = cj
            .output
            .iter()
            .map(|&(right, i)| {
                if right {
                    rdefs.get(i).cloned()
                } else {
                    ldefs.get(i).cloned()
                }
                .ok_or_else(|| SqlError::router("cross-shard join: missing column"))
            })
            .collect::<Result<_, _>>()?;
        write_columns(io, session, &defs).await?;
        let mut buf = Vec::new();
        let none: Vec<Cell> = vec![None; rdefs.len()];
        for l in &lrows {
            let found: &[usize] = match l.get(cj.left_key) {
                Some(Some(k)) => key_index
                    .get(k.as_slice())
                    .and_then(|i| matches.get(*i))
                    .map(Vec::as_slice)
                    .unwrap_or(&[]),
                _ => &[],
            };
            let rights: Vec<&Vec<Cell>> = if found.is_empty() {
                if cj.left_outer {
                    vec![&none]
                } else {
                    continue;
                }
            } else {
                found.iter().filter_map(|i| rrows.get(*i)).collect()
            };
            for r in rights {
                buf.clear();
                for &(right, i) in &cj.output {
                    let v = if right { r.get(i) } else { l.get(i) };
                    resultset::put_text_value(&mut buf, v.and_then(|c| c.as_deref()));
                }
                io.write_row(&buf).await.map_err(io_err)?;
            }
        }
        write_end(io, session).await
    }

    /// Plans `sql` (written by the router) and collects its whole result.
    async fn collect_sql(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        keyspace: &str,
        sql: &str,
    ) -> Result<(Vec<ColumnDef>, Vec<Vec<Cell>>), SqlError> {
        let plan = crate::planner::plan_internal(sql, Some(keyspace), session.last_insert_id, rt)?;
        let Plan::Exec(e) = plan else {
            return Err(SqlError::router(
                "cross-shard join: a side did not plan to a read",
            ));
        };
        self.collect(session, rt, &e).await
    }

    async fn collect(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        e: &Exec,
    ) -> Result<(Vec<ColumnDef>, Vec<Vec<Cell>>), SqlError> {
        if e.merge.is_some() || e.limit.is_some() {
            return Err(SqlError::router("cross-shard join: a side needs merging"));
        }
        let ks = e
            .keyspace
            .as_deref()
            .and_then(|k| rt.keyspace(k))
            .ok_or_else(|| SqlError::router("cross-shard join without a keyspace"))?;
        let Targets::Ls { template, ls } = &e.targets else {
            return Err(SqlError::router("cross-shard join: unexpected targets"));
        };
        let unq = crate::topology::Unqualify(Some(ks));
        let mut defs = Vec::new();
        let mut rows = Vec::new();
        for &l in ls {
            let ps =
                ks.placement.get(l as usize).cloned().ok_or_else(|| {
                    SqlError::router(format!("logical shard {l} has no placement"))
                })?;
            let addr = rt.shards.get(&ps).map(|s| s.address()).unwrap_or_default();
            let sql = ks.fill(template, l);
            let mut lease = self.conn(session, rt, &ps).await?;
            let r = async {
                let map = |x: mysql_async::Error| from_backend(x, &ps, &addr, unq);
                let mut res = lease.conn.query_iter(sql).await.map_err(map)?;
                if defs.is_empty() {
                    if let Some(cols) = res.columns() {
                        defs = cols.iter().map(|c| column_def(c, unq)).collect();
                    }
                }
                while let Some(row) = res.next().await.map_err(map)? {
                    rows.push(
                        row.unwrap()
                            .into_iter()
                            .map(|v| match v {
                                Value::NULL => None,
                                Value::Bytes(b) => Some(b),
                                other => {
                                    Some(other.as_sql(true).trim_matches('\'').as_bytes().to_vec())
                                }
                            })
                            .collect::<Vec<Cell>>(),
                    );
                    if rows.len() > MAX_ROWS {
                        return Err(too_many());
                    }
                }
                Ok(())
            }
            .await;
            self.give_back(session, lease).await;
            r?;
        }
        Ok((defs, rows))
    }
}

fn too_many() -> SqlError {
    SqlError::unsupported(format!(
        "a cross-shard join reading more than {MAX_ROWS} rows on one side (narrow it with WHERE conditions)"
    ))
}

/// A left-side key as an SQL literal: numbers as they are, anything else quoted.
fn literal(k: &[u8], kind: Kind) -> String {
    let numeric = matches!(kind, Kind::Exact | Kind::Float)
        && !k.is_empty()
        && k.iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'));
    if numeric {
        String::from_utf8_lossy(k).into_owned()
    } else {
        Value::Bytes(k.to_vec()).as_sql(false)
    }
}
