//! `UPDATE … SET shard_key = literal`: rows whose new key maps to another logical shard are
//! moved there (insert on the new logical shard, delete on the old one) in the same
//! transaction as the update itself.

use super::Engine;
use crate::backend::error::from_backend;
use crate::error::SqlError;
use crate::planner::StmtKind;
use crate::planner::{Exec, KeyLiteral, MoveRows, RouteKind, Targets};
use crate::session::Session;
use crate::sql::quote_ident;
use crate::wire::PacketIo;
use mysql_async::{Row, Value};

impl Engine {
    /// Runs a shard-key-changing `UPDATE` (see the module doc). Outside a transaction it runs
    /// in one of its own, committed before the OK (best effort across physical shards, like
    /// every multi-shard commit, with the partial case reported).
    pub(super) async fn move_rows(
        &self,
        session: &mut Session,
        m: MoveRows,
        io: &mut PacketIo,
    ) -> Result<(), SqlError> {
        let k = m
            .update
            .keyspace
            .clone()
            .ok_or_else(|| SqlError::router("UPDATE without a keyspace"))?;
        let Targets::Ls { template, ls } = &m.update.targets else {
            return Err(SqlError::router(
                "UPDATE of the shard key without logical shards",
            ));
        };
        // Writes to moving logical shards wait for cutovers like any write.
        let target = Exec::plain(
            Some(k.clone()),
            StmtKind::Write,
            RouteKind::One,
            Targets::Ls {
                template: String::new(),
                ls: vec![m.new_ls],
            },
        );
        let mut written = self.moves.guard(session, &m.update).await?;
        written.extend(self.moves.guard(session, &target).await?);
        let own_txn = !session.in_transaction();
        if own_txn {
            session.explicit_txn = true;
        }
        session.txn_ls.extend(written);
        let r = self.move_rows_in_txn(session, &k, template, ls, &m).await;
        match r {
            Ok(affected) => {
                if own_txn {
                    self.finish_txn(session, true).await?;
                }
                self.ok(session, io, affected, 0, 0, "").await
            }
            Err(e) => {
                if own_txn {
                    let _ = self.finish_txn(session, false).await;
                }
                Err(e)
            }
        }
    }

    async fn move_rows_in_txn(
        &self,
        session: &mut Session,
        k: &str,
        template: &str,
        ls: &[u32],
        m: &MoveRows,
    ) -> Result<u64, SqlError> {
        let rt = self.topo.table();
        let ks = rt
            .keyspace(k)
            .ok_or_else(|| SqlError::unknown_database(k))?;
        let unq = crate::topology::Unqualify(Some(ks));
        let ps_of = |l: u32| {
            ks.placement
                .get(l as usize)
                .cloned()
                .ok_or_else(|| SqlError::router(format!("logical shard {l} has no placement")))
        };
        let key = match &m.value {
            KeyLiteral::Int(i) => match i64::try_from(*i) {
                Ok(v) => Value::Int(v),
                Err(_) => Value::UInt(u64::try_from(*i).unwrap_or(u64::MAX)),
            },
            KeyLiteral::Num(n) => Value::Bytes(n.clone().into_bytes()),
            KeyLiteral::Str(s) => Value::Bytes(s.clone().into_bytes()),
        };
        let new_schema = ks.schema(m.new_ls);
        let new_ps = ps_of(m.new_ls)?;
        let mut affected = 0;
        for &l in ls {
            let ps = ps_of(l)?;
            let schema = ks.schema(l);
            let addr = rt.shards.get(&ps).map(|s| s.address()).unwrap_or_default();
            let mut lease = self.conn(session, &rt, &ps).await?;
            let r = async {
                let map = |e: mysql_async::Error| from_backend(e, &ps, &addr, unq);
                let sql = ks.fill(template, l);
                let res = lease.conn.query_iter(sql).await.map_err(map)?;
                let n = res.affected_rows();
                res.drop_result().await.map_err(map)?;
                if l == m.new_ls || n == 0 {
                    return Ok((n, Vec::new(), Vec::new()));
                }
                // The updated rows now carry the new key: read them (locked), then delete them.
                // (The schema is read beside the transaction: its tables' definitions.)
                let pool = self.backends.pool_for(&rt, &ps, session.grants.admin)?;
                let mut side = pool.get_conn().await?;
                let tables = tessera_shardmove::load_tables(&mut side, &schema).await;
                crate::backend::release_lib(side, false).await;
                let tables = tables.map_err(|e| SqlError::router(format!("{e:#}")))?;
                let t = tables
                    .into_iter()
                    .find(|t| t.name == m.table)
                    .ok_or_else(|| SqlError::unknown_table(k, &m.table))?;
                let cols: Vec<String> = t.columns.iter().map(|c| quote_ident(c)).collect();
                let rows: Vec<Row> = lease
                    .conn
                    .exec(
                        format!(
                            "SELECT {} FROM {}.{} WHERE {} = ? FOR UPDATE",
                            cols.join(", "),
                            quote_ident(&schema),
                            quote_ident(&m.table),
                            quote_ident(&m.column)
                        ),
                        vec![key.clone()],
                    )
                    .await
                    .map_err(map)?;
                lease
                    .conn
                    .exec_drop(
                        format!(
                            "DELETE FROM {}.{} WHERE {} = ?",
                            quote_ident(&schema),
                            quote_ident(&m.table),
                            quote_ident(&m.column)
                        ),
                        vec![key.clone()],
                    )
                    .await
                    .map_err(map)?;
                Ok::<_, SqlError>((n, cols, rows.into_iter().map(Row::unwrap).collect()))
            }
            .await;
            self.give_back(session, lease).await;
            let (n, cols, rows): (u64, Vec<String>, Vec<Vec<Value>>) = r?;
            affected += n;
            if rows.is_empty() {
                continue;
            }
            let addr = rt
                .shards
                .get(&new_ps)
                .map(|s| s.address())
                .unwrap_or_default();
            let mut lease = self.conn(session, &rt, &new_ps).await?;
            let r = async {
                let map = |e: mysql_async::Error| from_backend(e, &new_ps, &addr, unq);
                let one = format!("({})", vec!["?"; cols.len()].join(", "));
                for batch in rows.chunks((60_000 / cols.len().max(1)).max(1)) {
                    lease
                        .conn
                        .exec_drop(
                            format!(
                                "INSERT INTO {}.{} ({}) VALUES {}",
                                quote_ident(&new_schema),
                                quote_ident(&m.table),
                                cols.join(", "),
                                vec![one.clone(); batch.len()].join(", ")
                            ),
                            batch.iter().flatten().cloned().collect::<Vec<Value>>(),
                        )
                        .await
                        .map_err(map)?;
                }
                Ok::<(), SqlError>(())
            }
            .await;
            self.give_back(session, lease).await;
            r?;
        }
        Ok(affected)
    }
}
