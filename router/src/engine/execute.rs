//! Running one plan: a statement on one physical shard goes straight there, the rest to the
//! scatter, merge or multi-shard write paths.

use super::core::{prefixed, Engine, Work};
use super::single::{answered, single_target, WireStatement};

use crate::error::SqlError;
use crate::planner::{Exec, Plan, StmtKind, Targets};
use crate::session::Session;
use crate::topology::{KeyspaceRouting, RoutingTable, Unqualify};
use crate::wire::PacketIo;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Refuses a plan the session's user may not run: a keyspace outside its list (1044), or, for
/// a read-only user, anything that writes (1290).
pub(super) fn check_grants(session: &Session, plan: &Plan) -> Result<(), SqlError> {
    use crate::planner::Local;
    let g = &session.grants;
    let (keyspace, writes) = match plan {
        Plan::Exec(e) => (e.keyspace.as_deref(), e.kind != StmtKind::Read),
        Plan::Local(Local::Use(k) | Local::ShowTables { keyspace: k, .. }) => {
            (Some(k.as_str()), false)
        }
        Plan::Local(Local::CrossJoin(j)) => (Some(j.keyspace.as_str()), false),
        Plan::Local(Local::Lookup(p)) => (Some(p.keyspace.as_str()), p.exec.kind != StmtKind::Read),
        Plan::Local(Local::Gather(g)) => (Some(g.keyspace.as_str()), false),
        Plan::Local(Local::InsertSelect(p)) => (Some(p.keyspace.as_str()), true),
        Plan::Local(Local::SubqueriesFirst(p)) => (Some(p.keyspace.as_str()), true),
        Plan::Local(Local::LimitedWrite(w)) => (Some(w.keyspace.as_str()), true),
        Plan::Local(Local::OrderedWrite(w)) => (Some(w.keyspace.as_str()), true),
        Plan::Local(Local::MoveRows(m)) => (m.update.keyspace.as_deref(), true),
        // (The insert it makes is checked again when it runs.)
        Plan::Local(Local::Sequence(s)) => (Some(s.keyspace.as_str()), true),
        Plan::Local(_) => (None, false),
    };
    if let Some(k) = keyspace.filter(|k| !g.may_use(k)) {
        return Err(crate::session::Grants::denied(&session.user, k));
    }
    if writes && g.read_only {
        return Err(crate::session::Grants::read_only_refusal(&session.user));
    }
    Ok(())
}

impl Engine {
    /// Executes `plan` for `session`, writing the whole response (result set or OK) to `io`.
    ///
    /// # Errors
    /// A [`SqlError`] to send as an ERR packet (valid before or in place of a row).
    pub async fn execute(
        &self,
        session: &mut Session,
        plan: Plan,
        io: &mut PacketIo,
    ) -> Result<(), SqlError> {
        self.execute_planned(session, plan, io, None).await
    }

    /// [`Engine::execute`] for a plan made with routing table `planned_with`: a read runs
    /// with that same table (writes take the newest, after waiting out a cutover).
    ///
    /// # Errors
    /// Like [`Engine::execute`].
    pub async fn execute_planned(
        &self,
        session: &mut Session,
        plan: Plan,
        io: &mut PacketIo,
        planned_with: Option<&Arc<RoutingTable>>,
    ) -> Result<(), SqlError> {
        check_grants(session, &plan)?;
        match plan {
            // Boxed, like the other paths off the single-shard one below: a statement's
            // future is as large as its largest branch, and it is moved on every call.
            Plan::Local(l) => Box::pin(self.local(session, l, io)).await,
            Plan::Exec(e) => {
                self.check_auto_is_null(session, &e)?;
                if let (Some(c), Some(ks)) = (&e.conflict, &e.keyspace) {
                    let rt = self.topo.table();
                    Box::pin(self.unique_keys.check(&self.backends, &rt, ks, c)).await?;
                }
                // Writes to a logical shard being cut over wait here for the flip.
                let written = self.moves.guard(session, &e).await?;
                if !written.is_empty() {
                    if session.in_transaction() {
                        session.txn_ls.extend(written);
                    } else {
                        session.copy_after = written;
                    }
                }
                let fresh;
                let rt = match planned_with {
                    Some(rt) if e.kind == StmtKind::Read => rt,
                    _ => {
                        fresh = self.topo.table();
                        &fresh
                    }
                };
                let ddl_in = (e.kind == StmtKind::Ddl)
                    .then(|| e.keyspace.clone())
                    .flatten();
                let r = self.exec(session, rt, *e, io).await;
                session.opens_no_txn = false;
                session.copy_after.clear();
                if let Some(ks) = ddl_in {
                    self.unique_keys.forget_keyspace(&ks);
                    self.columns.forget_keyspace(&ks);
                }
                self.after_lost(session, r).await
            }
        }
    }

    /// Refuses a read in a sharded keyspace while the session has `sql_auto_is_null` on:
    /// each logical shard's connection would read `auto_col IS NULL` as its own last insert,
    /// not the session's.
    ///
    /// # Errors
    /// 1235 naming the keyspace.
    pub(super) fn check_auto_is_null(&self, session: &Session, e: &Exec) -> Result<(), SqlError> {
        if !session.auto_is_null || e.kind != StmtKind::Read {
            return Ok(());
        }
        match e.keyspace.as_deref() {
            Some(k) if self.topo.table().keyspace(k).is_some_and(|ks| ks.sharded) => {
                Err(SqlError::unsupported(format!(
                    "a read in sharded keyspace {k} while sql_auto_is_null is on (its IS NULL would find another connection's last insert); SET sql_auto_is_null = 0"
                )))
            }
            _ => Ok(()),
        }
    }

    /// A statement's outcome `r`, after a backend connection of the session's transaction
    /// was lost under it (2013): its work is gone with it, so the whole transaction is
    /// rolled back and the client told so.
    pub(super) async fn after_lost<T>(
        &self,
        session: &mut Session,
        r: Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        match r {
            Err(mut err) if err.code == 2013 && session.in_transaction() => {
                let _ = Box::pin(self.finish_txn(session, false)).await;
                err.message.push_str("; the transaction was rolled back");
                Err(err)
            }
            r => r,
        }
    }

    pub(super) async fn exec(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        e: Exec,
        io: &mut PacketIo,
    ) -> Result<(), SqlError> {
        let ks: Option<&KeyspaceRouting> = match &e.keyspace {
            Some(k) => Some(
                rt.keyspace(k)
                    .ok_or_else(|| SqlError::unknown_database(k))?,
            ),
            None => None,
        };
        // DDL commits implicitly in MySQL; do the same for the session's transaction.
        if e.kind == StmtKind::Ddl && (session.explicit_txn || !session.txn_conns.is_empty()) {
            Box::pin(self.finish_txn(session, true)).await?;
        }
        // A read of no table and no function opens no transaction (autocommit off); nor does
        // DDL, which ends one.
        session.opens_no_txn = (session.opens_no_txn || e.kind == StmtKind::Ddl)
            && !session.explicit_txn
            && session.txn_ps.is_empty();
        let unq = Unqualify(ks);
        if let (Targets::Verbatim { reserve, .. }, Some(k)) = (&e.targets, ks) {
            if let Some(ps) = k.placement.first() {
                if *reserve {
                    self.reserve(session, rt, ps).await?;
                }
            }
        }
        // A `SQL_CALC_FOUND_ROWS` read runs on the scatter path, which reads each statement's
        // `FOUND_ROWS()` after it.
        let found = e.found_rows && e.kind == StmtKind::Read;
        let single = match found {
            true => None,
            false => single_target(session, rt, &e, ks)?,
        };
        // `SET STATEMENT vars FOR`, before each statement sent (after any union of them).
        let prefix: Vec<u8> = match (&e.statement_prefix, &e.held) {
            (Some(p), Some(h)) => h.restore(p)?,
            (Some(p), None) => p.as_bytes().to_vec(),
            (None, _) => Vec::new(),
        };
        // Plans one physical shard answers: straight there.
        if let Some(t) = single {
            // Literals the planner read as stand-ins go back as the client's bytes.
            let restored;
            let text = match &e.held {
                _ if t.raw.is_some() => t.statement(),
                None if prefix.is_empty() => t.statement(),
                held => {
                    let mut b = prefix.clone();
                    match held {
                        Some(h) => b.extend_from_slice(&h.restore(&t.sql)?),
                        None => b.extend_from_slice(t.sql.as_bytes()),
                    }
                    restored = b;
                    WireStatement::Text {
                        sql: &restored,
                        db: t.db.as_deref(),
                        remap: t.remap,
                    }
                }
            };
            // One shard (a logical shard's): straight to it, one future level fewer.
            if let [ps] = t.shards.as_ref() {
                let r = self.run_single(session, rt, ps, &text, io, unq).await?;
                return answered(r).map(|_| ());
            }
            return Box::pin(self.one_of(session, rt, &t.shards, &text, io, unq, t.none))
                .await
                .map(|_| ());
        }
        // Work out (physical shard, statements) pairs.
        let mut work: Work = BTreeMap::new();
        // Per physical shard, the default database of each of its statements (when the plan
        // needs one: [`crate::planner::Exec::default_db`]).
        let mut dbs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let bytes = |sql: &str| match &e.held {
            Some(h) => h.restore(sql),
            None => Ok(sql.as_bytes().to_vec()),
        };
        match (&e.targets, ks) {
            // A found-rows read of reference tables or of no table: one copy answers.
            (Targets::Reference { sql }, Some(k)) if found => {
                let ps = k
                    .physical_shards()
                    .into_iter()
                    .next()
                    .ok_or_else(|| SqlError::router("keyspace has no physical shards"))?;
                work.insert(ps, vec![bytes(sql)?]);
            }
            (Targets::Any { sql }, _) if found => {
                let ps = match session.txn_conns.keys().next() {
                    Some(ps) => ps.clone(),
                    None => rt
                        .shard_names()
                        .into_iter()
                        .next()
                        .ok_or_else(|| SqlError::router("no physical shard is registered"))?,
                };
                work.insert(ps, vec![bytes(sql)?]);
            }
            (Targets::Reference { sql }, Some(k)) => {
                let sql = bytes(sql)?;
                for ps in k.physical_shards() {
                    if e.default_db {
                        dbs.insert(ps.clone(), vec![k.reference_schema()]);
                    }
                    work.entry(ps).or_default().push(sql.clone());
                }
            }
            (Targets::Ls { template, ls }, Some(k)) => {
                for l in ls {
                    let ps = k.placement.get(*l as usize).ok_or_else(|| {
                        SqlError::router(format!("logical shard {l} has no placement"))
                    })?;
                    work.entry(ps.clone())
                        .or_default()
                        .push(bytes(&k.fill(template, *l))?);
                    if e.default_db {
                        dbs.entry(ps.clone()).or_default().push(k.schema(*l));
                    }
                }
            }
            (Targets::PerLs(v), Some(k)) => {
                for (l, sql) in v {
                    let ps = k.placement.get(*l as usize).ok_or_else(|| {
                        SqlError::router(format!("logical shard {l} has no placement"))
                    })?;
                    work.entry(ps.clone())
                        .or_default()
                        .push(bytes(&k.fill(sql, *l))?);
                }
            }
            _ => return Err(SqlError::router("plan without a keyspace")),
        }
        if found {
            let total = super::scatter::Found::default();
            let r = match e.merge.as_ref() {
                Some(spec) => {
                    Box::pin(self.merged_read(
                        session,
                        rt,
                        work,
                        spec,
                        io,
                        ks,
                        Some(&total),
                        &prefix,
                    ))
                    .await
                }
                None => {
                    Box::pin(self.scatter_read(
                        session,
                        rt,
                        work,
                        false,
                        e.limit,
                        io,
                        ks,
                        Some(&total),
                        &prefix,
                    ))
                    .await
                }
            };
            if r.is_ok() {
                session.calc_found = Some(Some(total.load(std::sync::atomic::Ordering::Relaxed)));
            }
            return r;
        }
        if let (StmtKind::Read, Some(spec)) = (e.kind, e.merge.as_ref()) {
            return Box::pin(self.merged_read(session, rt, work, spec, io, ks, None, &prefix))
                .await;
        }
        if work.len() == 1 && work.values().all(|v| v.len() == 1) && e.limit.is_none() {
            let (ps, mut sqls) = work
                .into_iter()
                .next()
                .ok_or_else(|| SqlError::router("no target"))?;
            let sql = prefixed(&prefix, sqls.pop().unwrap_or_default());
            let db = dbs.remove(&ps).and_then(|mut v| v.pop());
            let text = WireStatement::Text {
                sql: &sql,
                db: db.as_deref(),
                remap: false,
            };
            return self
                .run_single(session, rt, &ps, &text, io, unq)
                .await?
                .unwrap_or(Ok(()));
        }
        match e.kind {
            StmtKind::Read => {
                Box::pin(self.scatter_read(
                    session,
                    rt,
                    work,
                    e.unionable,
                    e.limit,
                    io,
                    ks,
                    None,
                    &prefix,
                ))
                .await
            }
            StmtKind::Write | StmtKind::Ddl => {
                let copies = matches!(e.targets, Targets::Reference { .. });
                let work = work
                    .into_iter()
                    .map(|(ps, v)| (ps, v.into_iter().map(|s| prefixed(&prefix, s)).collect()))
                    .collect();
                let split = matches!(e.targets, Targets::PerLs(_));
                Box::pin(self.multi_write(session, rt, work, dbs, e.kind, io, ks, copies, split))
                    .await
            }
        }
    }
}
