//! Reads over several logical shards: streamed as rows arrive, or merged (sorted, grouped,
//! aggregated) in the router.

use super::core::{Engine, Lease};

use super::merge;
use super::results::{self, column_def, write_columns, write_end};
use crate::error::{io_err, SqlError};
use crate::session::Session;
use crate::topology::{KeyspaceRouting, RoutingTable, Unqualify};
use crate::wire::resultset::ColumnDef;
use crate::wire::PacketIo;

/// Selects joined as `(…) UNION ALL (…)`.
fn union_all(sqls: impl Iterator<Item = Vec<u8>>) -> Vec<u8> {
    let mut u = Vec::new();
    for (i, s) in sqls.enumerate() {
        if i > 0 {
            u.extend_from_slice(b" UNION ALL ");
        }
        u.extend_from_slice(b"(\n");
        u.extend_from_slice(&s);
        u.extend_from_slice(b"\n)");
    }
    u
}

/// Rows buffered per physical shard while a scatter read streams.
pub(super) const SCATTER_CHANNEL: usize = 256;

/// A `SQL_CALC_FOUND_ROWS` read's total so far: each statement's `FOUND_ROWS()` is added.
pub(super) type Found = std::sync::Arc<std::sync::atomic::AtomicU64>;

/// The index-use status bits of a read's results, gathered over its shards.
pub(super) type IndexUse = std::sync::Arc<std::sync::atomic::AtomicU16>;

/// The most rows a `SQL_CALC_FOUND_ROWS` read merged across logical shards may ask for
/// (`LIMIT` offset plus count): each logical shard's rows are held apart until merged.
pub(super) const FOUND_ROWS_LIMIT: u64 = 100_000;

/// The connection a shard task streams on.
pub(super) enum StreamConn {
    /// One of the router's own (outside a transaction): rows and column definitions as the
    /// server sent them.
    Own(
        std::sync::Arc<crate::backend::ShardPool>,
        Box<crate::backend::wire::WireLease>,
    ),
    /// A `mysql_async` one: the session's pinned or reserved connection, or a pooled one.
    Pooled(Lease),
}

/// Where a shard task streams from, and what it gathers.
pub(super) struct StreamFrom {
    pub(super) ps: String,
    pub(super) addr: String,
    pub(super) ks: Option<KeyspaceRouting>,
    /// Each statement's `FOUND_ROWS()` is added here, when given.
    pub(super) found: Option<Found>,
    pub(super) status: IndexUse,
}

impl StreamFrom {
    /// Streaming from physical shard `ps` (its address read from `rt`).
    fn new(
        rt: &RoutingTable,
        ps: String,
        ks: Option<&KeyspaceRouting>,
        found: Option<&Found>,
        status: &IndexUse,
    ) -> Self {
        let addr = rt.shards.get(&ps).map(|s| s.address()).unwrap_or_default();
        StreamFrom {
            ps,
            addr,
            ks: ks.cloned(),
            found: found.cloned(),
            status: status.clone(),
        }
    }
}

/// Streams statements from one physical shard on a task that owns the connection and hands
/// it back when done: each batch's statements, in order, into its channel.
pub(super) fn spawn_stream(
    mut conn: StreamConn,
    batches: Vec<(Vec<Vec<u8>>, tokio::sync::mpsc::Sender<results::Msg>)>,
    from: StreamFrom,
) -> tokio::task::JoinHandle<StreamConn> {
    tokio::spawn(async move {
        let StreamFrom {
            ps,
            addr,
            ks,
            found,
            status,
        } = from;
        let unq = Unqualify(ks.as_ref());
        for (stmts, tx) in batches {
            let r = match &mut conn {
                StreamConn::Pooled(lease) if lease.conn.is_own() => {
                    // The session's own connection (or a pooled one) of the router's own:
                    // rows and column definitions as the server sent them.
                    let map = |e| crate::backend::error::from_wire(e, &ps, &addr, unq);
                    match lease.conn.own() {
                        Some(own) => match own.start().await {
                            Ok(()) => {
                                let r = results::stream_wire(
                                    &mut own.lease,
                                    &stmts,
                                    &tx,
                                    unq,
                                    found.as_deref(),
                                    &status,
                                )
                                .await
                                .map_err(map);
                                own.after_streaming();
                                r
                            }
                            Err(e) => Err(crate::backend::error::from_backend(e, &ps, &addr, unq)),
                        },
                        None => Ok(()),
                    }
                }
                StreamConn::Pooled(lease) => {
                    results::stream_statements(
                        &mut lease.conn,
                        &stmts,
                        &tx,
                        &ps,
                        &addr,
                        unq,
                        found.as_deref(),
                    )
                    .await
                }
                StreamConn::Own(pool, lease) => {
                    results::stream_wire(lease, &stmts, &tx, unq, found.as_deref(), &status)
                        .await
                        .map_err(|e| {
                            crate::backend::error::from_wire(e, &pool.name, &pool.addr, unq)
                        })
                }
            };
            if let Err(e) = r {
                let _ = tx.send(results::Msg::Error(e)).await;
                break;
            }
        }
        conn
    })
}

impl Engine {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn scatter_read(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        work: super::core::Work,
        unionable: bool,
        limit: Option<(u64, u64)>,
        io: &mut PacketIo,
        ks: Option<&KeyspaceRouting>,
        found: Option<&Found>,
        prefix: &[u8],
    ) -> Result<(), SqlError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<results::Msg>(SCATTER_CHANNEL);
        let mut tasks = Vec::new();
        let status = IndexUse::default();
        for (ps, sqls) in work {
            let lease = match self.stream_conn(session, rt, &ps).await {
                Ok(l) => l,
                Err(err) => {
                    // Give back what was taken before failing.
                    drop(tx);
                    self.join_leases(session, tasks).await;
                    return Err(err);
                }
            };
            // The first logical shard's select runs alone, the rest as one `UNION ALL`: the
            // client's column types come from a plain select (a union widens some, such as
            // TEXT to MEDIUMTEXT and ENUM to VARCHAR).
            let stmts: Vec<Vec<u8>> = if unionable && sqls.len() > 2 {
                let mut it = sqls.into_iter();
                let first = it.next().unwrap_or_default();
                vec![first, union_all(it)]
            } else {
                sqls
            };
            let stmts = stmts
                .into_iter()
                .map(|s| super::core::prefixed(prefix, s))
                .collect();
            tasks.push(spawn_stream(
                lease,
                vec![(stmts, tx.clone())],
                StreamFrom::new(rt, ps, ks, found, &status),
            ));
        }
        drop(tx);
        let (skip, take) = limit.unwrap_or((0, u64::MAX));
        let mut seen: u64 = 0;
        let mut sent: u64 = 0;
        let mut header = false;
        let mut outcome: Result<(), SqlError> = Ok(());
        while let Some(msg) = rx.recv().await {
            match msg {
                results::Msg::Columns(defs) => {
                    if !header {
                        if let Err(e) = write_columns(io, session, &defs).await {
                            outcome = Err(e);
                            break;
                        }
                        header = true;
                    }
                }
                results::Msg::Row(bytes) => {
                    seen += 1;
                    if seen <= skip {
                        continue;
                    }
                    // Past the limit, a found-rows read still runs every statement to its
                    // end (each one's `FOUND_ROWS()` follows it); its rows are bounded by the
                    // limit pushed down to each.
                    if sent >= take {
                        if found.is_some() {
                            continue;
                        }
                        break;
                    }
                    if let Err(e) = io.write_row(&bytes).await.map_err(io_err) {
                        outcome = Err(e);
                        break;
                    }
                    sent += 1;
                    if sent >= take && found.is_none() {
                        break;
                    }
                }
                results::Msg::Error(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        drop(rx);
        self.join_leases(session, tasks).await;
        outcome?;
        if !header {
            return Err(SqlError::router("no shard returned a result set"));
        }
        session.query_status = status.load(std::sync::atomic::Ordering::Relaxed);
        write_end(io, session).await
    }

    /// Reads from every physical shard on its own stream, then merge-sorts or aggregates.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn merged_read(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        work: super::core::Work,
        spec: &crate::planner::merge::MergeSpec,
        io: &mut PacketIo,
        ks: Option<&KeyspaceRouting>,
        found: Option<&Found>,
        prefix: &[u8],
    ) -> Result<(), SqlError> {
        use crate::planner::merge::MergeMode;
        // A found-rows read keeps each logical shard's select apart (its `FOUND_ROWS()` is
        // its own): one stream each, run in turn on the physical shard's connection, so each
        // stream must hold all its rows — at most the limit.
        let apart = match (found, &spec.mode, spec.limit) {
            (None, _, _) => None,
            (Some(_), MergeMode::Sorted { .. }, Some((skip, take)))
                if skip.saturating_add(take) <= FOUND_ROWS_LIMIT =>
            {
                Some(usize::try_from(skip + take).unwrap_or(usize::MAX) + 4)
            }
            (Some(_), _, _) => {
                return Err(SqlError::unsupported(format!(
                    "SQL_CALC_FOUND_ROWS over several logical shards with GROUP BY, DISTINCT, aggregates, or ORDER BY without a LIMIT of at most {FOUND_ROWS_LIMIT} rows"
                )))
            }
        };
        let mut streams = Vec::new();
        let mut tasks = Vec::new();
        let mut failed = None;
        // `UNION ALL` loses column types (ENUM reads as VARCHAR, TEXT as MEDIUMTEXT): the
        // first logical shard's statement is prepared, not run, for its exact metadata.
        let mut probe: Option<Vec<ColumnDef>> = None;
        let status = IndexUse::default();
        for (ps, sqls) in work {
            let mut lease = match self.stream_conn(session, rt, &ps).await {
                Ok(l) => l,
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            };
            if probe.is_none() {
                if let Some(first) = sqls.first() {
                    probe = describe(&mut lease, first, Unqualify(ks)).await;
                }
            }
            if let Some(cap) = apart {
                let mut batches = Vec::new();
                for s in sqls {
                    let (tx, rx) = tokio::sync::mpsc::channel::<results::Msg>(cap);
                    streams.push(rx);
                    batches.push((vec![super::core::prefixed(prefix, s)], tx));
                }
                tasks.push(spawn_stream(
                    lease,
                    batches,
                    StreamFrom::new(rt, ps, ks, found, &status),
                ));
                continue;
            }
            let stmt = if sqls.len() == 1 {
                sqls.into_iter().next().unwrap_or_default()
            } else {
                let mut u = union_all(sqls.into_iter());
                if !spec.union_order.is_empty() {
                    let keys: Vec<String> = spec
                        .union_order
                        .iter()
                        .map(|(c, d)| format!("{c}{}", if *d { " DESC" } else { "" }))
                        .collect();
                    u.extend_from_slice(format!(" ORDER BY {}", keys.join(", ")).as_bytes());
                    if let Some((skip, take)) = spec.limit {
                        u.extend_from_slice(
                            format!(" LIMIT {}", skip.saturating_add(take)).as_bytes(),
                        );
                    }
                }
                u
            };
            let (tx, rx) = tokio::sync::mpsc::channel::<results::Msg>(SCATTER_CHANNEL);
            streams.push(rx);
            let stmt = super::core::prefixed(prefix, stmt);
            tasks.push(spawn_stream(
                lease,
                vec![(vec![stmt], tx)],
                StreamFrom::new(rt, ps, ks, None, &status),
            ));
        }
        let outcome = match failed {
            Some(e) => Err(e),
            None => match &spec.mode {
                MergeMode::Sorted { keys } => {
                    self.merge_sorted(session, &mut streams, spec, keys, io, probe)
                        .await
                }
                MergeMode::Aggregate { .. } => {
                    self.merge_aggregate(session, &mut streams, spec, io, probe)
                        .await
                }
            },
        };
        // Every statement of a found-rows read runs to its end, for its `FOUND_ROWS()`.
        if found.is_some() {
            for s in &mut streams {
                while s.recv().await.is_some() {}
            }
        }
        drop(streams);
        self.join_leases(session, tasks).await;
        outcome?;
        session.query_status = status.load(std::sync::atomic::Ordering::Relaxed);
        write_end(io, session).await
    }

    /// Waits for shard tasks and gives their connections back.
    pub(super) async fn join_leases(
        &self,
        session: &mut Session,
        tasks: Vec<tokio::task::JoinHandle<StreamConn>>,
    ) {
        for t in tasks {
            match t.await {
                Ok(StreamConn::Pooled(l)) => self.give_back(session, l).await,
                Ok(StreamConn::Own(pool, l)) => pool.wire.put(*l),
                Err(e) => tracing::warn!(error = %e, "shard task failed"),
            }
        }
    }

    /// The connection a read streams on from `ps`, with the session's `SET`s in place: one
    /// of the router's own where [`own_conn_serves`] (unless the shard's server wants a login
    /// those do not speak), else the session's or a pooled one.
    pub(super) async fn stream_conn(
        &self,
        session: &mut Session,
        rt: &RoutingTable,
        ps: &str,
    ) -> Result<StreamConn, SqlError> {
        if own_conn_serves(session, ps) {
            let pool = self.backends.pool_for(rt, ps, session.grants.admin)?;
            let sets = session.backend_sets();
            if let Some(mut lease) = pool.get_wire(&sets).await? {
                if let Err(e) = lease.conn.replay(&sets).await {
                    // (Its session state is unknown now: closed, not reused.)
                    lease.clean = false;
                    pool.wire.put(lease);
                    return Err(crate::backend::error::from_wire(
                        e,
                        &pool.name,
                        &pool.addr,
                        Unqualify(None),
                    ));
                }
                return Ok(StreamConn::Own(pool, Box::new(lease)));
            }
        }
        Ok(StreamConn::Pooled(self.conn(session, rt, ps).await?))
    }

    /// Takes the next message of one stream: `Ok(None)` at its end.
    pub(super) async fn next_row(
        rx: &mut tokio::sync::mpsc::Receiver<results::Msg>,
        defs: &mut Option<Vec<ColumnDef>>,
    ) -> Result<Option<Vec<u8>>, SqlError> {
        loop {
            match rx.recv().await {
                None => return Ok(None),
                Some(results::Msg::Columns(d)) => {
                    if defs.is_none() {
                        *defs = Some(d);
                    }
                }
                Some(results::Msg::Row(r)) => return Ok(Some(r)),
                Some(results::Msg::Error(e)) => return Err(e),
            }
        }
    }

    pub(super) async fn merge_sorted(
        &self,
        session: &Session,
        streams: &mut [tokio::sync::mpsc::Receiver<results::Msg>],
        spec: &crate::planner::merge::MergeSpec,
        keys: &[crate::planner::merge::SortKey],
        io: &mut PacketIo,
        probe: Option<Vec<ColumnDef>>,
    ) -> Result<(), SqlError> {
        let mut defs: Option<Vec<ColumnDef>> = None;
        type Head = Option<(Vec<u8>, merge::Spans)>;
        let mut heads: Vec<Head> = Vec::with_capacity(streams.len());
        let mut raw = Vec::with_capacity(streams.len());
        for rx in streams.iter_mut() {
            raw.push(Self::next_row(rx, &mut defs).await?);
        }
        let defs = defs.ok_or_else(|| SqlError::router("no shard returned a result set"))?;
        let defs = match probe {
            Some(p) if p.len() == defs.len() => p,
            _ => defs,
        };
        let layout = merge::Layout::new(&defs, spec)?;
        merge::check_keys(&defs, &layout, spec)?;
        let visible = layout.visible();
        let split = |r: Vec<u8>| -> Result<(Vec<u8>, merge::Spans), SqlError> {
            let c = merge::split_row(&r, layout.total)
                .ok_or_else(|| SqlError::router("malformed row from a shard"))?;
            Ok((r, c))
        };
        for r in raw {
            heads.push(match r {
                Some(r) => Some(split(r)?),
                None => None,
            });
        }
        write_columns(io, session, &defs[..visible]).await?;
        let (skip, take) = spec.limit.unwrap_or((0, u64::MAX));
        let (mut seen, mut sent) = (0u64, 0u64);
        while sent < take {
            let mut best: Option<usize> = None;
            for (i, h) in heads.iter().enumerate() {
                let Some((r, c)) = h else { continue };
                best = match best {
                    None => Some(i),
                    Some(b) => {
                        let (br, bc) = heads[b]
                            .as_ref()
                            .map(|(r, c)| (r.as_slice(), c.as_slice()))
                            .unwrap_or((&[], &[]));
                        if merge::cmp_rows(&layout, keys, r, c, br, bc) == std::cmp::Ordering::Less
                        {
                            Some(i)
                        } else {
                            Some(b)
                        }
                    }
                };
            }
            let Some(b) = best else { break };
            if let Some((r, c)) = heads[b].take() {
                seen += 1;
                if seen > skip {
                    let n = merge::prefix_len(&c, &r, visible);
                    io.write_row(&r[..n]).await.map_err(io_err)?;
                    sent += 1;
                }
            }
            let mut none = None;
            heads[b] = match Self::next_row(&mut streams[b], &mut none).await? {
                Some(r) => Some(split(r)?),
                None => None,
            };
        }
        Ok(())
    }

    pub(super) async fn merge_aggregate(
        &self,
        session: &Session,
        streams: &mut [tokio::sync::mpsc::Receiver<results::Msg>],
        spec: &crate::planner::merge::MergeSpec,
        io: &mut PacketIo,
        probe: Option<Vec<ColumnDef>>,
    ) -> Result<(), SqlError> {
        let mut defs: Option<Vec<ColumnDef>> = None;
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let mut agg: Option<merge::Aggregator<'_>> = None;
        for rx in streams.iter_mut() {
            while let Some(r) = Self::next_row(rx, &mut defs).await? {
                match agg.as_mut() {
                    Some(a) => a.add(r)?,
                    None => pending.push(r),
                }
                if agg.is_none() {
                    if let Some(d) = &defs {
                        let d = match &probe {
                            Some(p) if p.len() == d.len() => p.clone(),
                            _ => d.clone(),
                        };
                        let mut a = merge::Aggregator::new(spec, d)?;
                        for p in pending.drain(..) {
                            a.add(p)?;
                        }
                        agg = Some(a);
                    }
                }
            }
        }
        let agg = match agg {
            Some(a) => a,
            None => merge::Aggregator::new(
                spec,
                match probe {
                    Some(p) => p,
                    None => {
                        defs.ok_or_else(|| SqlError::router("no shard returned a result set"))?
                    }
                },
            )?,
        };
        let cols = agg.columns();
        let rows = agg.finish()?;
        write_columns(io, session, &cols).await?;
        for r in rows {
            io.write_row(&r).await.map_err(io_err)?;
        }
        Ok(())
    }
}

/// Whether a statement of `session` on `ps` runs on one of the router's own connections:
/// outside a transaction (or a statement that opens none, on a shard the transaction has not
/// touched), and not on a shard where the session holds a reserved connection.
pub(super) fn own_conn_serves(session: &Session, ps: &str) -> bool {
    let outside =
        !session.in_transaction() || (session.opens_no_txn && !session.txn_conns.contains_key(ps));
    outside && !session.reserved_ps.contains(ps)
}

/// The column definitions of `sql` (prepared, not run) on `conn`: a `UNION ALL` widens some
/// types, the first logical shard's select does not. `None` when it cannot be described (the
/// rows' own definitions are used).
async fn describe(conn: &mut StreamConn, sql: &[u8], unq: Unqualify<'_>) -> Option<Vec<ColumnDef>> {
    match conn {
        StreamConn::Own(_, lease) => {
            let extended = lease.conn.extended;
            let defs = lease.conn.describe(sql).await.ok()?;
            defs.iter()
                .map(|p| results::wire_column_def(p, extended, unq))
                .collect()
        }
        StreamConn::Pooled(lease) if lease.conn.is_own() => {
            let own = lease.conn.own()?;
            own.start().await.ok()?;
            let extended = own.lease.conn.extended;
            let r = own.lease.conn.describe(sql).await;
            // A server's error leaves it usable; anything else, lost.
            own.lease.clean = matches!(
                r,
                Ok(_) | Err(crate::backend::wire::WireError::Server { .. })
            );
            r.ok()?
                .iter()
                .map(|p| results::wire_column_def(p, extended, unq))
                .collect()
        }
        StreamConn::Pooled(lease) => {
            // (Text only: mysql_async prepares a `str`.)
            let sql = std::str::from_utf8(sql).ok()?;
            let stmt = lease.conn.prep(sql).await.ok()?;
            let defs = stmt.columns().iter().map(|c| column_def(c, unq)).collect();
            let _ = lease.conn.close(stmt).await;
            Some(defs)
        }
    }
}
