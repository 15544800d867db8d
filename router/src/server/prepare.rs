//! Prepared statements (`COM_STMT_PREPARE`, `COM_STMT_EXECUTE`) and `COM_FIELD_LIST`.

use super::query::{finished, query, SeriesCache};
use super::shared::Shared;
use crate::error::SqlError;
use crate::planner;
use crate::session::Session;
use crate::wire::resultset;
use crate::wire::PacketIo;
use std::sync::Arc;

/// Most prepared statements a session may hold.
pub(super) const MAX_PREPARED: usize = 16_382;

pub(super) async fn prepare(
    shared: &Shared,
    session: &mut Session,
    io: &mut PacketIo,
    body: &[u8],
) -> Result<(), SqlError> {
    // The scope holds for prepared statements as for any other.
    let class = crate::sql::classify::classify(body, &session.lex);
    let rt = shared.engine.topo.table();
    crate::planner::passthrough::check_scope(&class, &session.user, session.grants.admin, &rt)?;
    let sql =
        std::str::from_utf8(body).map_err(|e| crate::error::not_utf8("statement", body, e))?;
    let sql = sql.trim().trim_end_matches(';').trim_end().to_string();
    let markers = crate::sql::markers::markers(&sql)?;
    let (cols, backend_params) = shared.engine.describe(session, &sql).await?;
    if backend_params != 0 && usize::from(backend_params) != markers.len() {
        return Err(SqlError::router(format!(
            "parameter count mismatch: {} markers, the backend counts {backend_params}",
            markers.len()
        )));
    }
    if session.prepared.len() >= MAX_PREPARED {
        return Err(SqlError::new(
            1461,
            "42000",
            "Can't create more than max_prepared_stmt_count statements",
        ));
    }
    let id = session.next_stmt_id;
    session.next_stmt_id = session.next_stmt_id.wrapping_add(1).max(1);
    let nparams = markers.len() as u16;
    let ncols = cols.len() as u16;
    session.prepared.insert(
        id,
        crate::session::prepared::Prepared::new(sql, markers, ncols),
    );
    let mut p = vec![0x00];
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(&ncols.to_le_bytes());
    p.extend_from_slice(&nparams.to_le_bytes());
    p.push(0);
    p.extend_from_slice(&0u16.to_le_bytes());
    io.write_packet(&p).await.map_err(crate::error::io_err)?;
    let eof = |io: &mut PacketIo| {
        let p = if session.deprecate_eof() {
            None
        } else {
            Some(resultset::eof(session.status_flags(), 0))
        };
        let _ = io;
        p
    };
    if nparams > 0 {
        let mut b = Vec::new();
        for _ in 0..nparams {
            b.clear();
            resultset::ColumnDef::text("?").encode(&mut b, io.extended_metadata);
            io.write_packet(&b).await.map_err(crate::error::io_err)?;
        }
        if let Some(e) = eof(io) {
            io.write_packet(&e).await.map_err(crate::error::io_err)?;
        }
    }
    if ncols > 0 {
        let mut b = Vec::new();
        for c in &cols {
            b.clear();
            c.encode(&mut b, io.extended_metadata);
            io.write_packet(&b).await.map_err(crate::error::io_err)?;
        }
        if let Some(e) = eof(io) {
            io.write_packet(&e).await.map_err(crate::error::io_err)?;
        }
    }
    Ok(())
}

pub(super) async fn execute(
    shared: &Shared,
    session: &mut Session,
    io: &mut PacketIo,
    body: &[u8],
    series: &mut SeriesCache,
) -> Result<(), SqlError> {
    let id = body
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| {
            SqlError::new(1210, "HY000", "Incorrect arguments to mysqld_stmt_execute")
        })?;
    let Some(p) = session.prepared.get_mut(&id) else {
        return Err(SqlError::new(
            1243,
            "HY000",
            format!("Unknown prepared statement handler ({id}) given to mysqld_stmt_execute"),
        ));
    };
    io.binary_mode = true;
    // A read whose route does not depend on the parameters runs as a server-side prepared
    // statement (in and out of transactions), outside result shadows (which compare text rows) and routing
    // shadows (which must see the values).
    let rt = shared.engine.topo.table();
    // Long data too large to bind into the statement's text (which the backend's
    // `max_allowed_packet` would then refuse) goes on as long data, where the statement runs
    // on one target whatever its parameters.
    if rt.candidate.is_none() && p.long_data_len() >= LONG_DATA_SERVER_SIDE {
        // (Not where a result shadow compares reads: it compares text rows.)
        if let Some(e) = p
            .long_data_plan(&rt, session.keyspace.as_deref())
            .filter(|e| {
                e.keyspace
                    .as_ref()
                    .is_none_or(|k| !rt.result_shadows.contains_key(k))
            })
        {
            let params = p.split_params(&body[4..])?;
            let types = p.param_types.clone();
            let long_data = std::mem::take(&mut p.long_data);
            let started = std::time::Instant::now();
            let fingerprint = crate::sql::fingerprint(&p.sql);
            let text = p.sql.clone();
            let ks = e.keyspace.as_deref().or(session.keyspace.as_deref());
            series.select(&shared.metrics, e.route.as_str(), ks.unwrap_or_default());
            io.rows = 0;
            let r = shared
                .engine
                .execute_prepared(session, &e, &types, &params, Some(&long_data), io, &rt)
                .await;
            if !matches!(r, Ok(false)) {
                let r = r.map(|_| ());
                finished(shared, io, &fingerprint, &text, 1, started, &r, series);
                return r;
            }
            // Not here after all: bound as literals below.
            if let Some(p) = session.prepared.get_mut(&id) {
                p.long_data = long_data;
            }
        }
    }
    let Some(p) = session.prepared.get_mut(&id) else {
        return Err(SqlError::router("prepared statement vanished"));
    };
    let forward = if !p.long_data.is_empty() || rt.candidate.is_some() {
        None
    } else {
        p.forward_plan(&rt, session.keyspace.as_deref())
            .filter(|(e, _)| {
                e.exec()
                    .keyspace
                    .as_ref()
                    .is_none_or(|k| !rt.result_shadows.contains_key(k))
            })
            .map(|(e, fp)| (e.clone(), fp.clone()))
    };
    // The statement with its values bound as literals, once made.
    let mut bound: Option<String> = None;
    let forward = match forward {
        Some((crate::session::prepared::Forward::Fixed(e), fp)) => {
            Some((e, fp, Some(p.sql.clone())))
        }
        Some((crate::session::prepared::Forward::ByShard(e), _)) => {
            let mut e = Arc::unwrap_or_clone(e);
            // Routed like literals: the bound statement's plan picks the logical shard.
            // (Without long data, which is never forwarded: UTF-8 text.)
            let sql = String::from_utf8(p.bind(&body[4..], &session.lex)?)
                .map_err(|e| crate::error::not_utf8("statement", e.as_bytes(), e.utf8_error()))?;
            let (planned, fp) = shared.plans.plan_keyed(
                &sql,
                session.keyspace.as_deref(),
                session.last_insert_id,
                &rt,
            );
            let one = match &planned {
                Ok(planner::Plan::Exec(b))
                    if b.kind == planner::StmtKind::Read
                        && b.merge.is_none()
                        && b.limit.is_none()
                        && b.keyspace == e.keyspace =>
                {
                    match &b.targets {
                        planner::Targets::Ls { ls, .. } if ls.len() == 1 => Some((ls[0], b.route)),
                        _ => None,
                    }
                }
                _ => None,
            };
            match (one, &mut e.targets) {
                (Some((l, route)), planner::Targets::Ls { ls, .. }) => {
                    *ls = vec![l];
                    e.route = route;
                    bound = Some(sql);
                    Some((Arc::new(e), fp.unwrap_or_default().into(), None))
                }
                _ => return Box::pin(query(shared, session, io, sql.as_bytes(), series)).await,
            }
        }
        None => None,
    };
    if let Some((e, fingerprint, text)) = forward {
        let Some(p) = session.prepared.get_mut(&id) else {
            return Err(SqlError::router("prepared statement vanished"));
        };
        let params = p.split_params(&body[4..])?;
        let types = p.param_types.clone();
        let started = std::time::Instant::now();
        let ks = e.keyspace.as_deref().or(session.keyspace.as_deref());
        series.select(&shared.metrics, e.route.as_str(), ks.unwrap_or_default());
        io.rows = 0;
        let r = shared
            .engine
            .execute_prepared(session, &e, &types, &params, None, io, &rt)
            .await;
        if !matches!(r, Ok(false)) {
            let r = r.map(|_| ());
            finished(
                shared,
                io,
                &fingerprint,
                text.as_deref().or(bound.as_deref()).unwrap_or_default(),
                1,
                started,
                &r,
                series,
            );
            return r;
        }
    }
    let sql = match bound {
        Some(sql) => sql.into_bytes(),
        None => match session.prepared.get_mut(&id) {
            Some(p) => p.bind(&body[4..], &session.lex)?,
            None => return Err(SqlError::router("prepared statement vanished")),
        },
    };
    // Boxed: statements that run server-side do not carry a text statement's future.
    Box::pin(query(shared, session, io, &sql, series)).await
}

/// Long data of at least this many bytes (all parameters together) is sent to the backend as
/// long data, where the statement allows it, rather than bound into the statement's text.
const LONG_DATA_SERVER_SIDE: usize = 1 << 20;

/// COM_FIELD_LIST: the columns of one table, as column definitions.
pub(super) async fn field_list(
    shared: &Shared,
    session: &mut Session,
    io: &mut PacketIo,
    body: &[u8],
) -> Result<(), SqlError> {
    let table = body.split(|b| *b == 0).next().unwrap_or_default();
    let table = std::str::from_utf8(table)
        .map_err(|e| crate::error::not_utf8("table name", table, e))?
        .replace('`', "``");
    let sql = format!("SELECT * FROM `{table}` LIMIT 0");
    let rt = shared.engine.topo.table();
    let plan = planner::plan(&sql, session.keyspace.as_deref(), &rt)?;
    shared.engine.field_list(session, plan, io).await
}
