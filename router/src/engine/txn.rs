//! Transactions: the backend connections a session's transaction pins, commit and rollback
//! over several physical shards, and borrowing a connection for one statement.

use super::core::{Engine, Lease};

use crate::backend::error::from_backend;
use crate::backend::Conn;
use crate::error::SqlError;
use crate::session::Session;
use crate::topology::{RoutingTable, Unqualify};

impl Engine {
    /// Commits (or rolls back) the session's transaction on every pinned connection.
    ///
    /// # Errors
    /// 1105 naming which shards committed when a commit fails part way.
    pub async fn finish_txn(&self, session: &mut Session, commit: bool) -> Result<(), SqlError> {
        session.explicit_txn = false;
        session.txn_start = Default::default();
        session.savepoints.clear();
        let conns = std::mem::take(&mut session.txn_conns);
        let written = std::mem::take(&mut session.txn_ls);
        session.txn_ps.clear();
        let short_waits = std::mem::take(&mut session.txn_short_waits);
        let mut done = Vec::new();
        // Lookup entries commit first: a row never commits without its entry.
        let mut failed: Option<(String, String)> = if session.lookup_pre.is_empty() {
            None
        } else {
            self.finish_lookup_pre(session, commit).await
        };
        let deleted = std::mem::take(&mut session.lookup_post);
        for (ps, mut c) in conns {
            let sql = if commit && failed.is_none() {
                "COMMIT"
            } else {
                "ROLLBACK"
            };
            match c.query_drop(sql).await {
                Ok(()) => {
                    if sql == "COMMIT" {
                        done.push(ps.clone());
                    }
                    if session.reserved_ps.contains(&ps) {
                        // The session's own connection stays with it.
                        session.reserved.insert(ps, c);
                        continue;
                    }
                    let dirty = !session.sets.is_empty()
                        || !session.autocommit
                        || short_waits.contains(&ps);
                    crate::backend::release(c, dirty).await;
                }
                Err(e) => {
                    if failed.is_none() {
                        failed = Some((ps.clone(), e.to_string()));
                    }
                }
            }
        }
        if commit && !done.is_empty() {
            // Committed writes to moving logical shards are copied before the commit is
            // acknowledged.
            let lss: Vec<(String, u32)> = written.into_iter().collect();
            self.moves.copy(&lss).await;
        }
        if commit && failed.is_none() && !deleted.is_empty() {
            self.lookup_cleanup(deleted).await;
        }
        match failed {
            None => Ok(()),
            Some((ps, e)) if commit => Err(SqlError::router(format!(
                "transaction commit failed on physical shard {ps}: {e}; committed on: [{}]; the rest rolled back",
                done.join(", ")
            ))),
            Some((ps, e)) => Err(SqlError::router(format!("rollback failed on physical shard {ps}: {e}"))),
        }
    }

    /// Borrows a connection to `ps` for `session`: the pinned one inside a transaction
    /// (starting the transaction on first use), else one from the pool with the session's
    /// `SET`s replayed.
    pub(super) async fn conn(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        ps: &str,
    ) -> Result<Lease, SqlError> {
        let may_pin = !session.opens_no_txn;
        self.conn_to(session, rt, ps, may_pin).await
    }

    /// [`Engine::conn`] for a statement that opens no transaction (a session `SET`, a
    /// statement being prepared): the transaction's connection if it holds one on `ps`, else
    /// one that is not pinned, even with autocommit off (as on one server, where such a
    /// statement leaves the session outside a transaction).
    pub(super) async fn conn_outside_txn(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        ps: &str,
    ) -> Result<Lease, SqlError> {
        self.conn_to(session, rt, ps, false).await
    }

    /// A pooled connection of `ps` with the session's settings, apart from its transaction
    /// and its reserved connections (for work of the router's own beside them, such as the
    /// temporary table a `LOAD DATA` into a sharded table fills).
    pub(super) async fn side_conn(
        &self,
        session: &Session,
        rt: &RoutingTable,
        ps: &str,
    ) -> Result<Lease, SqlError> {
        let pool = self.backends.pool_for(rt, ps, session.grants.admin)?;
        self.pooled(session, &pool, false).await
    }

    /// A connection of `pool` with the session's `SET`s replayed (all of them for one that
    /// will be pinned, which is set to autocommit off apart; else as
    /// [`Session::backend_sets`] says).
    async fn pooled(
        &self,
        session: &Session,
        pool: &crate::backend::ShardPool,
        pinned: bool,
    ) -> Result<Lease, SqlError> {
        let sets = match pinned {
            true => std::borrow::Cow::Borrowed(session.sets.as_slice()),
            false => session.backend_sets(),
        };
        let conn = pool.get_backend(&sets).await?;
        // The pool knows what its own connections carry; a `mysql_async` one is reset.
        let dirty = matches!(conn, Conn::Lib(_)) && !sets.is_empty();
        Ok(Lease {
            ps: pool.name.clone(),
            conn,
            pinned: false,
            dirty,
            reserved: false,
        })
    }

    async fn conn_to(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        ps: &str,
        may_pin: bool,
    ) -> Result<Lease, SqlError> {
        if session.in_transaction() {
            if let Some(mut c) = session.txn_conns.remove(ps) {
                self.bound_lock_waits(session, ps, &mut c).await?;
                return Ok(Lease {
                    ps: ps.to_string(),
                    conn: c,
                    pinned: true,
                    dirty: false,
                    reserved: false,
                });
            }
        }
        let pool = self.backends.pool_for(rt, ps, session.grants.admin)?;
        let reserved = session.reserved.remove(ps);
        let is_reserved = reserved.is_some();
        let (mut conn, dirty) = match reserved {
            // The session's own: its `SET`s were replayed when it was reserved, and later
            // ones as they came.
            Some(c) => (c, false),
            None => {
                let pinned = may_pin && session.in_transaction();
                let l = self.pooled(session, &pool, pinned).await?;
                (l.conn, l.dirty)
            }
        };
        let pinned = may_pin && session.in_transaction();
        if pinned {
            if !session.autocommit {
                // So that the connection says what the session is (`SELECT @@autocommit`);
                // reset when the transaction gives it back.
                conn.query_drop("SET autocommit = 0")
                    .await
                    .map_err(|e| SqlError::shard(&pool.name, &pool.addr, e))?;
            }
            conn.query_drop(session.txn_start.sql.as_str())
                .await
                .map_err(|e| SqlError::shard(&pool.name, &pool.addr, e))?;
            for sp in &session.savepoints {
                conn.query_drop(format!("SAVEPOINT {}", crate::sql::quote_ident(sp)))
                    .await
                    .map_err(|e| SqlError::shard(&pool.name, &pool.addr, e))?;
            }
            session.txn_ps.insert(ps.to_string());
            self.bound_lock_waits(session, ps, &mut conn).await?;
        }
        Ok(Lease {
            ps: ps.to_string(),
            conn,
            pinned,
            dirty,
            reserved: is_reserved && !pinned,
        })
    }

    /// Makes the session hold a connection to `ps` for its life (see
    /// [`Session::reserved`]): the one its transaction pins there, or a new one with the
    /// session's `SET`s replayed.
    ///
    /// # Errors
    /// When no connection can be had.
    pub(super) async fn reserve(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        ps: &str,
    ) -> Result<(), SqlError> {
        if session.reserved_ps.contains(ps) {
            return Ok(());
        }
        if !session.txn_conns.contains_key(ps) {
            let lease = self.conn(session, rt, ps).await?;
            if lease.pinned {
                session.txn_conns.insert(lease.ps, lease.conn);
            } else {
                session.reserved.insert(lease.ps, lease.conn);
            }
        }
        session.reserved_ps.insert(ps.to_string());
        Ok(())
    }

    /// Reserves a connection on the session's home shard ([`home_shard`]) for state a
    /// statement without tables makes (named locks, user variables), and returns its name.
    ///
    /// # Errors
    /// When no physical shard is registered or no connection can be had.
    pub async fn reserve_home(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
    ) -> Result<String, SqlError> {
        let ps = home_shard(session, rt)
            .ok_or_else(|| SqlError::router("no physical shard is registered"))?;
        self.reserve(session, rt, &ps).await?;
        Ok(ps)
    }

    /// Carries user variables `names`, just assigned on the session's connection on `ps`, to
    /// every backend connection the session uses (`engine/uservars.rs`).
    ///
    /// # Errors
    /// The backend's, reading them back.
    /// The rows of `sql` (a `SHOW` of the server) as text, asked on the session's home server
    /// (its keyspace's) on a connection that carries its settings.
    ///
    /// # Errors
    /// The backend's.
    pub async fn text_rows_at_home(
        &self,
        session: &mut Session,
        sql: &[u8],
    ) -> Result<Vec<Vec<Option<Vec<u8>>>>, SqlError> {
        let rt = self.topo.table();
        let ps = home_shard(session, &rt)
            .ok_or_else(|| SqlError::router("no physical shard is registered"))?;
        let mut lease = self.conn_outside_txn(session, &rt, &ps).await?;
        let r: Result<Vec<mysql_async::Row>, _> = lease.conn.query(sql).await;
        self.give_back(session, lease).await;
        let rows =
            r.map_err(|e| crate::backend::error::from_backend(e, &ps, "", Unqualify(None)))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                r.unwrap()
                    .into_iter()
                    .map(|v| match v {
                        mysql_async::Value::NULL => None,
                        mysql_async::Value::Bytes(b) => Some(b),
                        other => Some(other.as_sql(true).into_bytes()),
                    })
                    .collect()
            })
            .collect())
    }

    /// The session values of system variables `names`, as the session sees them now on a
    /// connection of `ps` that carries its settings, read and kept as the session's own
    /// (before an admin's `SET GLOBAL` changes what new connections start with; a session on
    /// one server keeps its values). A variable without a session value is left alone.
    pub async fn keep_session_values(&self, session: &mut Session, ps: &str, names: &[String]) {
        let rt = self.topo.table();
        let Ok(mut lease) = self.conn_outside_txn(session, &rt, ps).await else {
            return;
        };
        let mut carried = Vec::new();
        for n in names {
            let v = [crate::sql::classify::Assigned::System(n.clone())];
            if let Ok(c) = super::uservars::capture(&mut lease.conn, &v).await {
                carried.extend(c);
            }
        }
        self.give_back(session, lease).await;
        super::uservars::keep(session, carried);
    }

    pub async fn carry_user_variables(
        &self,
        session: &mut Session,
        ps: &str,
        names: &[Vec<u8>],
    ) -> Result<(), SqlError> {
        let conn = match session.txn_conns.get_mut(ps) {
            Some(c) => c,
            None => session
                .reserved
                .get_mut(ps)
                .ok_or_else(|| SqlError::router("the session's reserved connection is gone"))?,
        };
        let vars: Vec<crate::sql::classify::Assigned> = names
            .iter()
            .map(|n| crate::sql::classify::Assigned::User(n.clone()))
            .collect();
        let carried = super::uservars::capture(conn, &vars)
            .await
            .map_err(|e| from_backend(e, ps, "", Unqualify(None)))?;
        super::uservars::keep(session, carried);
        Ok(())
    }

    /// Gives the session's reserved connections back, reset (their temporary tables, locks and
    /// prepared statements go with them): at the end of a session, `COM_RESET_CONNECTION`,
    /// `COM_CHANGE_USER`.
    pub async fn release_reserved(&self, session: &mut Session) {
        session.reserved_ps.clear();
        session.locked_ps.clear();
        for (_, c) in std::mem::take(&mut session.reserved) {
            crate::backend::release(c, true).await;
        }
    }

    /// In a transaction that spans several physical shards, bounds each lock wait on `ps` to
    /// `multi_shard_lock_wait_s`: two such transactions can wait for each other across two
    /// servers, a deadlock neither server sees, which would otherwise last the servers' full
    /// `innodb_lock_wait_timeout`. The waiting statement gets 1205 (retriable), as the
    /// statement a single server picks in a deadlock gets 1213.
    pub(super) async fn bound_lock_waits(
        &self,
        session: &mut Session,
        ps: &str,
        conn: &mut Conn,
    ) -> Result<(), SqlError> {
        if self.multi_shard_lock_wait_s == 0
            || session.txn_ps.len() < 2
            || session.txn_short_waits.contains(ps)
        {
            return Ok(());
        }
        conn.query_drop(format!(
            "SET SESSION innodb_lock_wait_timeout = {}",
            self.multi_shard_lock_wait_s
        ))
        .await
        .map_err(|e| SqlError::shard(ps, "", e))?;
        session.txn_short_waits.insert(ps.to_string());
        Ok(())
    }

    /// Any reachable physical shard (a pinned one first).
    pub(super) async fn any_conn(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
    ) -> Result<Lease, SqlError> {
        if let Some(ps) = session.txn_conns.keys().next().cloned() {
            return self.conn(session, rt, &ps).await;
        }
        // The session's keyspace's server first: a global or a function read there answers
        // as that server does.
        let mut names = rt.shard_names();
        if let Some(home) = home_shard(session, rt) {
            if let Some(i) = names.iter().position(|n| *n == home) {
                names[..=i].rotate_right(1);
            }
        }
        let mut last = SqlError::router("no physical shard is registered");
        for ps in &names {
            match self.conn_outside_txn(session, rt, ps).await {
                Ok(l) => return Ok(l),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    pub(super) async fn give_back(&self, session: &mut Session, lease: Lease) {
        if lease.pinned {
            session.txn_conns.insert(lease.ps, lease.conn);
        } else if lease.reserved {
            session.reserved.insert(lease.ps, lease.conn);
        } else {
            crate::backend::release(lease.conn, lease.dirty).await;
        }
    }
}

/// Where a session's statements without tables keep connection-local state (named locks,
/// user variables): its keyspace's first physical shard (so the sessions of one keyspace
/// share one server's named locks), else the first physical shard by name.
pub(super) fn home_shard(session: &Session, rt: &RoutingTable) -> Option<String> {
    session
        .keyspace
        .as_deref()
        .and_then(|k| rt.keyspace(k))
        .and_then(|k| k.placement.first().cloned())
        .or_else(|| rt.shard_names().into_iter().next())
}

impl Engine {
    /// Interrupts the statement a backend connection runs (`KILL QUERY` of the server's
    /// connection id `id` on physical shard `ps`), on a connection of the router's own.
    ///
    /// # Errors
    /// When the shard cannot be reached, or the server refuses.
    pub async fn kill_backend_query(&self, ps: &str, id: u32) -> Result<(), SqlError> {
        let rt = self.topo.table();
        // The control account may interrupt any account's statement (an admin's session runs
        // on that account's connections, everyone else's on the data account's).
        let pool = self.backends.pool_for(&rt, ps, true)?;
        let mut conn = pool.get_conn().await?;
        let r = mysql_async::prelude::Queryable::query_drop(&mut conn, format!("KILL QUERY {id}"))
            .await;
        crate::backend::release_lib(conn, false).await;
        match r {
            // The statement ended meanwhile: nothing to interrupt.
            Err(mysql_async::Error::Server(e)) if e.code == 1094 => Ok(()),
            Err(e) => Err(SqlError::shard(&pool.name, &pool.addr, e)),
            Ok(()) => Ok(()),
        }
    }
}

impl Engine {
    /// `LOCK TABLES` over a sharded keyspace: on every physical shard of the keyspace, a
    /// connection reserved for the session locks each named table in every logical shard
    /// placed there (a reference table in the reference schema), with the lock type as
    /// written. As in MariaDB, it first commits the open transaction and releases the
    /// session's earlier locks. The session's statements on those shards then run on those
    /// connections, under the locks, until `UNLOCK TABLES`.
    ///
    /// # Errors
    /// 1146 for a table the keyspace does not have, the server's error for a lock.
    pub async fn lock_tables(
        &self,
        session: &mut Session,
        keyspace: &str,
        items: &[(String, String)],
    ) -> Result<(), SqlError> {
        use crate::sql::quote_ident;
        use crate::topology::TableRouting;
        let rt = self.topo.table();
        let ks = rt
            .keyspace(keyspace)
            .ok_or_else(|| SqlError::unknown_database(keyspace))?;
        self.finish_txn(session, true).await?;
        self.unlock_tables(session).await?;
        for ps in ks.physical_shards() {
            let mut list = Vec::new();
            for (table, mode) in items {
                match ks.table(table) {
                    Some(TableRouting::Reference) => list.push(format!(
                        "{}.{} {mode}",
                        quote_ident(&ks.reference_schema()),
                        quote_ident(table)
                    )),
                    Some(_) => {
                        for (l, p) in ks.placement.iter().enumerate() {
                            if *p == ps {
                                list.push(format!(
                                    "{}.{} {mode}",
                                    quote_ident(&ks.schema(l as u32)),
                                    quote_ident(table)
                                ));
                            }
                        }
                    }
                    None => return Err(SqlError::unknown_table(keyspace, table)),
                }
            }
            if list.is_empty() {
                continue;
            }
            self.reserve(session, &rt, &ps).await?;
            let mut lease = self.conn(session, &rt, &ps).await?;
            let r = lease
                .conn
                .query_drop(format!("LOCK TABLES {}", list.join(", ")))
                .await;
            self.give_back(session, lease).await;
            r.map_err(|e| SqlError::shard(&ps, "", e))?;
            session.locked_ps.insert(ps);
        }
        Ok(())
    }

    /// `UNLOCK TABLES` on every connection where the session holds locks of a sharded
    /// keyspace.
    ///
    /// # Errors
    /// The server's error.
    pub async fn unlock_tables(&self, session: &mut Session) -> Result<(), SqlError> {
        let locked = std::mem::take(&mut session.locked_ps);
        for ps in locked {
            if let Some(c) = session.reserved.get_mut(&ps) {
                c.query_drop("UNLOCK TABLES")
                    .await
                    .map_err(|e| SqlError::shard(&ps, "", e))?;
            }
        }
        Ok(())
    }
}
