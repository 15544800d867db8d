//! Writes and DDL over several physical shards, run concurrently; a partial failure names the
//! shards that committed.

use super::core::{Engine, WriteResult};

use crate::backend::error::from_backend;
use crate::error::SqlError;
use crate::planner::StmtKind;
use crate::session::Session;
use crate::topology::{KeyspaceRouting, RoutingTable, Unqualify};
use crate::wire::PacketIo;
use mysql_async::prelude::Queryable;

impl Engine {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn multi_write(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        work: super::core::Work,
        kind: StmtKind,
        io: &mut PacketIo,
        ks: Option<&KeyspaceRouting>,
        copies: bool,
        split_insert: bool,
    ) -> Result<(), SqlError> {
        let in_txn = session.in_transaction() && kind == StmtKind::Write;
        let found_rows = session.found_rows();
        let mut tasks = Vec::new();
        let mut leases_failed = None;
        for (ps, sqls) in work {
            let lease = if kind == StmtKind::Ddl {
                // DDL never runs on pinned connections.
                let was = (session.explicit_txn, session.autocommit);
                session.explicit_txn = false;
                session.autocommit = true;
                let l = self.conn(session, rt, &ps).await;
                (session.explicit_txn, session.autocommit) = was;
                l
            } else {
                self.conn(session, rt, &ps).await
            };
            let mut lease = match lease {
                Ok(l) => l,
                Err(err) => {
                    leases_failed = Some((ps.clone(), err));
                    continue;
                }
            };
            let addr = rt.shards.get(&ps).map(|s| s.address()).unwrap_or_default();
            let kscopy = ks.cloned();
            // Several statements on one physical shard commit together.
            let wrap = !in_txn && kind == StmtKind::Write && sqls.len() > 1;
            tasks.push(tokio::spawn(async move {
                let unq = Unqualify(kscopy.as_ref());
                let mut r = WriteResult::default();
                let map = |e: mysql_async::Error| from_backend(e, &ps, &addr, unq);
                let run = async {
                    if wrap {
                        lease
                            .conn
                            .query_drop("START TRANSACTION")
                            .await
                            .map_err(map)?;
                    }
                    for s in &sqls {
                        let res = lease.conn.query_iter(s.as_slice()).await.map_err(map)?;
                        let info = res.info().into_owned();
                        r.affected +=
                            crate::session::affected_rows(res.affected_rows(), &info, found_rows);
                        if let Some(id) = res.last_insert_id() {
                            r.last_insert_id = id;
                        }
                        let warnings = res.warnings();
                        r.warnings = r.warnings.saturating_add(warnings);
                        r.infos
                            .push((res.info().into_owned(), res.affected_rows(), warnings));
                        res.drop_result().await.map_err(map)?;
                        // Read after each statement: the next one clears them.
                        if warnings > 0 {
                            let c = super::single::conditions(&mut lease.conn, unq).await;
                            match (&mut r.conditions, c) {
                                (Some(all), Some(c)) => all.extend(c),
                                (None, Some(c)) if r.warnings == warnings => r.conditions = Some(c),
                                (all, _) => *all = None,
                            }
                        } else if r.conditions.is_none() && r.warnings == 0 {
                            r.conditions = Some(Vec::new());
                        }
                    }
                    if wrap {
                        lease.conn.query_drop("COMMIT").await.map_err(map)?;
                    }
                    Ok::<(), SqlError>(())
                };
                let out = run.await;
                if out.is_err() && wrap {
                    let _ = lease.conn.query_drop("ROLLBACK").await;
                }
                (lease, out.map(|()| r))
            }));
        }
        let mut total = WriteResult::default();
        let mut infos: Vec<(String, u64, u16)> = Vec::new();
        let mut conditions: Option<Vec<(String, u16, String)>> = Some(Vec::new());
        let mut ok_shards = Vec::new();
        let mut failures: Vec<(String, SqlError)> = Vec::new();
        if let Some(f) = leases_failed {
            failures.push(f);
        }
        for t in tasks {
            match t.await {
                Ok((lease, r)) => {
                    let ps = lease.ps.clone();
                    self.give_back(session, lease).await;
                    match r {
                        Ok(w) => {
                            // Copies of a reference table each change the same rows: count once.
                            total.affected = if copies {
                                total.affected.max(w.affected)
                            } else {
                                total.affected + w.affected
                            };
                            total.last_insert_id = total.last_insert_id.max(w.last_insert_id);
                            total.warnings = total.warnings.saturating_add(w.warnings);
                            infos.extend(w.infos);
                            match (&mut conditions, w.conditions) {
                                (Some(all), Some(c)) => all.extend(c),
                                (all, _) => *all = None,
                            }
                            ok_shards.push(ps);
                        }
                        Err(e) => failures.push((ps, e)),
                    }
                }
                Err(e) => failures.push((
                    "?".into(),
                    SqlError::router(format!("write task failed: {e}")),
                )),
            }
        }
        if failures.is_empty() {
            // Copies of a reference table each say the same; logical shards' counts add up.
            let info = if copies {
                infos.first().map(|i| i.0.clone()).unwrap_or_default()
            } else {
                merged_insert_info(&infos, split_insert)
            };
            // DDL on every logical shard's copy of one table (or every copy of a reference
            // table) warns once per copy of the same thing: one server would warn once.
            if let Some(c) = conditions.as_mut() {
                if kind == StmtKind::Ddl || copies {
                    let mut seen = std::collections::HashSet::new();
                    c.retain(|x| seen.insert(x.clone()));
                    total.warnings = u16::try_from(c.len()).unwrap_or(u16::MAX);
                }
            }
            session.conditions = conditions;
            return self
                .ok(
                    session,
                    io,
                    total.affected,
                    total.last_insert_id,
                    total.warnings,
                    &info,
                )
                .await;
        }
        let (ps, first) = failures.remove(0);
        if ok_shards.is_empty() || session.undone_on_error {
            return Err(first);
        }
        let verb = if in_txn {
            "applied (uncommitted, in this transaction)"
        } else {
            "committed"
        };
        Err(SqlError::router(format!(
            "statement partially applied: {verb} on physical shards [{}]; failed on {ps}: {}",
            ok_shards.join(", "),
            first.message
        )))
    }
}

impl Engine {
    /// An `UPDATE` or `DELETE` with `LIMIT` over several logical shards (see
    /// [`crate::planner::Local::LimitedWrite`]): one logical shard after another, each with
    /// the rows still to go as its limit, until none are; all of it or nothing (a transaction
    /// of the router's own, or a savepoint in the client's). The OK sums the parts.
    pub(super) async fn limited_write(
        &self,
        session: &mut Session,
        w: crate::planner::LimitedWrite,
        io: &mut PacketIo,
    ) -> Result<(), SqlError> {
        let own = self.statement_begin(session).await?;
        let r = self.limited_parts(session, &w, io).await;
        self.statement_end(session, own, r.is_ok()).await?;
        let (affected, warnings, infos, conditions) = r?;
        session.conditions = conditions;
        let info = crate::wire::resultset::merged_info(infos.iter().map(String::as_str));
        self.ok(session, io, affected, 0, warnings, &info).await
    }

    /// The parts of [`Engine::limited_write`], each run as a plan of its own (so that moves
    /// and fences apply as to any write); their affected rows, warnings, info texts and
    /// conditions.
    #[allow(clippy::type_complexity)]
    async fn limited_parts(
        &self,
        session: &mut Session,
        w: &crate::planner::LimitedWrite,
        io: &mut PacketIo,
    ) -> Result<(u64, u16, Vec<String>, Option<Vec<(String, u16, String)>>), SqlError> {
        use crate::planner::{Exec, Plan, RouteKind, Targets, LIMIT_PLACEHOLDER};
        let (mut affected, mut warnings) = (0u64, 0u16);
        let mut infos = Vec::new();
        let mut conditions: Option<Vec<(String, u16, String)>> = Some(Vec::new());
        let mut left = w.limit;
        for &ls in &w.ls {
            if left == 0 {
                break;
            }
            let plan = Plan::Exec(Box::new(Exec::plain(
                Some(w.keyspace.clone()),
                StmtKind::Write,
                RouteKind::One,
                Targets::Ls {
                    template: w.template.replacen(LIMIT_PLACEHOLDER, &left.to_string(), 1),
                    ls: vec![ls],
                },
            )));
            let outer = std::mem::replace(&mut session.defer_ok, true);
            let r = Box::pin(self.execute(session, plan, io)).await;
            session.defer_ok = outer;
            let done = session.deferred_ok.take();
            r?;
            let (a, _, wn, info) = done.unwrap_or_default();
            // An UPDATE's limit counts the rows it matched, changed or not.
            let found = if w.update {
                super::lookup::info_number(&info, "Rows matched:").unwrap_or(a)
            } else {
                a
            };
            left = left.saturating_sub(found);
            affected += a;
            warnings = warnings.saturating_add(wn);
            match (&mut conditions, session.conditions.take()) {
                (Some(all), Some(c)) => all.extend(c),
                (all, _) if wn > 0 => *all = None,
                _ => {}
            }
            if !info.is_empty() {
                infos.push(info);
            }
        }
        Ok((affected, warnings, infos, conditions))
    }
}

/// The info text of one statement split over logical shards, as MariaDB writes it for the
/// whole: the parts' counts summed (`split_insert`: the parts are one multi-row `INSERT`'s
/// rows). A part of a split multi-row `INSERT` that got one row has
/// no info text of its own (MariaDB writes none for one row): it counts as `Records: 1`, a
/// duplicate when it did not insert exactly one row, and its warnings.
fn merged_insert_info(infos: &[(String, u64, u16)], split_insert: bool) -> String {
    let records = split_insert
        || infos
            .iter()
            .any(|(i, _, _)| crate::wire::resultset::info_text(i).starts_with("Records: "));
    let filled: Vec<String> = infos
        .iter()
        .map(|(i, affected, warnings)| match (records, i.is_empty()) {
            (true, true) => format!(
                "Records: 1  Duplicates: {}  Warnings: {warnings}",
                u64::from(*affected != 1)
            ),
            _ => i.clone(),
        })
        .collect();
    crate::wire::resultset::merged_info(filled.iter().map(String::as_str))
}
