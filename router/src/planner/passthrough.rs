//! Statements that go to an unsharded keyspace as the client sent them, byte for byte: no
//! parse, no rewrite. The keyspace's schema is the keyspace's name, so a statement whose
//! names are unqualified or qualified with that name means the same there; it runs with that
//! schema as the backend connection's default database.

use super::plan::{Exec, Plan, RouteKind, StmtKind, Targets};
use crate::error::SqlError;
use crate::sql::classify::{Classified, VerbatimKind};
use crate::topology::RoutingTable;

/// The verbatim plan for `sql` in a session whose keyspace is `keyspace`, when it may have
/// one: the keyspace is unsharded, the statement's kind may run verbatim
/// ([`Classified::verbatim`], or [`Classified::admin`] for an `admin` user), and no name in
/// it may be another keyspace's schema or a physical schema. `information_schema` is read on the keyspace's own physical shard (its
/// other schemas are visible there too: see docs/sql-support.md).
///
/// A statement about connection-local state ([`Classified::local_state`]) runs verbatim on the
/// session's reserved connection: one that makes such state reserves it; one that only reads
/// or ends it needs one already (`reserved_ps`: the physical shards where the session holds
/// one), except `UNLOCK TABLES` without one, which has nothing to do.
pub fn verbatim(
    sql: &[u8],
    c: &Classified,
    keyspace: Option<&str>,
    reserved_ps: &std::collections::BTreeSet<String>,
    rt: &RoutingTable,
    admin: bool,
) -> Option<Plan> {
    let unsharded = match keyspace {
        Some(k) => rt.keyspace(k).filter(|k| !k.sharded),
        // No keyspace chosen: the one unsharded keyspace the statement's qualifiers name, if
        // they all name it (it runs there, that keyspace its default database).
        None => (|| {
            let mut named = c
                .qualifiers
                .iter()
                .filter(|q| !q.eq_ignore_ascii_case(b"information_schema"));
            let first = named.next()?;
            let ks = rt
                .keyspace(std::str::from_utf8(first).ok()?)
                .filter(|k| !k.sharded)?;
            named.all(|q| q == first).then_some(ks)
        })(),
    };
    let held = |ks: &crate::topology::KeyspaceRouting| {
        ks.placement
            .first()
            .is_some_and(|ps| reserved_ps.contains(ps))
    };
    // Ends state that was never made (no reserved connection there): nothing to do.
    if c.local_state.is_some_and(|l| !l.reserves) && !unsharded.is_some_and(held) {
        let unlock = crate::sql::lex::significant(sql, &Default::default())
            .first()
            .is_some_and(|t| t.is_word(sql, "UNLOCK"));
        return unlock.then_some(Plan::Local(super::plan::Local::Nothing));
    }
    let ks = unsharded?;
    // A statement naming a table `tessera movetables` moved (or is switching) is planned:
    // the planner sends it where the table lives now.
    if !ks.moved.is_empty()
        && crate::sql::lex::significant(sql, &Default::default())
            .iter()
            .any(|t| {
                let b = t.bytes(sql);
                let name = match t.kind {
                    crate::sql::lex::Kind::Word => b.to_vec(),
                    // `name`, a doubled backtick inside standing for one.
                    crate::sql::lex::Kind::QuotedIdent if b.len() >= 2 => {
                        let mut name = Vec::with_capacity(b.len());
                        let mut inner = b[1..b.len() - 1].iter().peekable();
                        while let Some(&c) = inner.next() {
                            if c == b'`' && inner.peek() == Some(&&b'`') {
                                inner.next();
                            }
                            name.push(c);
                        }
                        name
                    }
                    _ => return false,
                };
                std::str::from_utf8(&name).is_ok_and(|n| ks.moved_to(n).is_some())
            })
    {
        return None;
    }
    let admin = c.admin.filter(|_| admin && c.reach.is_some());
    let (kind, reserve) = match (c.verbatim, c.local_state.or(admin)) {
        (Some(k), _) => (k, false),
        (None, Some(l)) => (l.kind, l.reserves && !held(ks)),
        (None, None) => return None,
    };
    let own = ks.name.as_bytes();
    // Another unsharded keyspace on the same physical shard is no foreign name: its schema
    // is its name there, so the statement runs as written.
    let here = ks.placement.first();
    let foreign = c.qualifiers.iter().any(|q| {
        q.as_slice() != own
            && !q.eq_ignore_ascii_case(b"information_schema")
            && (std::str::from_utf8(q).map_or(true, |q| match rt.keyspace(q) {
                Some(other) => other.sharded || other.placement.first() != here,
                None => physical_schema_of(q, rt).is_some(),
            }))
    });
    // A metadata question about another keyspace is asked where that keyspace lives (the
    // planner routes it).
    let about_another = c
        .qualifiers
        .iter()
        .any(|q| q.eq_ignore_ascii_case(b"information_schema"))
        && crate::sql::lex::significant(sql, &Default::default())
            .iter()
            .filter(|t| t.kind == crate::sql::lex::Kind::String)
            .any(|t| {
                let v = crate::sql::classify::unquote(t.bytes(sql), &Default::default());
                v.as_slice() != own
                    && std::str::from_utf8(&v).is_ok_and(|v| rt.keyspace(v).is_some())
            });
    if about_another {
        return None;
    }
    // Names the router reserves are refused by the planner.
    let reserved = sql.windows(2).any(|w| w == b"__")
        && sql
            .windows(10)
            .any(|w| w.eq_ignore_ascii_case(b"__tessera_"));
    if foreign || reserved {
        return None;
    }
    let kind = match kind {
        VerbatimKind::Read => StmtKind::Read,
        VerbatimKind::Write => StmtKind::Write,
        VerbatimKind::Ddl => StmtKind::Ddl,
    };
    let sql = match c.routine_status {
        Some(f) => scoped_routine_status(sql, f, &ks.name),
        None => sql.to_vec(),
    };
    Some(Plan::Exec(Box::new(Exec::plain(
        Some(ks.name.clone()),
        kind,
        RouteKind::One,
        Targets::Verbatim { sql, reserve },
    ))))
}

/// `SHOW CREATE DATABASE|SCHEMA [IF NOT EXISTS] name` of a keyspace: asked where it lives —
/// an unsharded keyspace's schema as sent, a sharded one's logical shard 0 schema with its
/// name mapped back to the keyspace's in the answer. `None` for other statements and names.
pub fn show_create_database(
    sql: &[u8],
    toks: &[crate::sql::lex::Token],
    rt: &RoutingTable,
) -> Option<Plan> {
    let is = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.is_word(sql, w));
    if !(is(0, "SHOW") && is(1, "CREATE") && (is(2, "DATABASE") || is(2, "SCHEMA"))) {
        return None;
    }
    let at = if is(3, "IF") && is(4, "NOT") && is(5, "EXISTS") {
        6
    } else {
        3
    };
    let name = String::from_utf8(toks.get(at)?.ident(sql)?).ok()?;
    let ks = rt.keyspace(&name)?;
    let mut e = if ks.sharded {
        let if_not_exists = if at == 6 { "IF NOT EXISTS " } else { "" };
        Exec::plain(
            Some(ks.name.clone()),
            StmtKind::Read,
            RouteKind::One,
            Targets::Ls {
                template: format!(
                    "SHOW CREATE DATABASE {if_not_exists}{}",
                    crate::sql::LS_PLACEHOLDER
                ),
                ls: vec![0],
            },
        )
    } else {
        Exec::plain(
            Some(ks.name.clone()),
            StmtKind::Read,
            RouteKind::One,
            Targets::Verbatim {
                sql: sql.to_vec(),
                reserve: false,
            },
        )
    };
    e.metadata = ks.sharded;
    Some(Plan::Exec(Box::new(e)))
}

/// The plan of a `SHOW` of what the server offers ([`Classified::server_info`]): any physical
/// shard, as sent.
pub fn server_info(sql: &[u8], c: &Classified) -> Option<Plan> {
    if !c.server_info {
        return None;
    }
    let sql = std::str::from_utf8(sql).ok()?.to_string();
    Some(Plan::Exec(Box::new(Exec::plain(
        None,
        StmtKind::Read,
        RouteKind::Any,
        Targets::Any { sql },
    ))))
}

/// `ALTER TABLE t DISABLE KEYS` / `ENABLE KEYS` (what dumps wrap their inserts in) on a
/// table of a sharded keyspace: run on the table in every logical shard's schema (a
/// reference table in every physical shard's reference schema). `None` for other statements.
pub fn keys_toggle(
    sql: &[u8],
    toks: &[crate::sql::lex::Token],
    keyspace: Option<&str>,
    rt: &RoutingTable,
) -> Option<Plan> {
    use crate::sql::quote_ident;
    use crate::topology::TableRouting;
    let is = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.is_word(sql, w));
    if !(is(0, "ALTER") && is(1, "TABLE")) {
        return None;
    }
    let dotted = toks
        .get(3)
        .is_some_and(|t| t.kind == crate::sql::lex::Kind::Punct && sql[t.start] == b'.');
    let (ks, table, next) = if dotted {
        let s = String::from_utf8(toks.get(2)?.ident(sql)?).ok()?;
        (Some(s), toks.get(4)?.ident(sql)?, 5)
    } else {
        (keyspace.map(str::to_string), toks.get(2)?.ident(sql)?, 3)
    };
    let verb = if is(next, "DISABLE") {
        "DISABLE"
    } else if is(next, "ENABLE") {
        "ENABLE"
    } else {
        return None;
    };
    let rest_is_end = toks
        .get(next + 2)
        .is_none_or(|t| t.kind == crate::sql::lex::Kind::Semicolon);
    if !is(next + 1, "KEYS") || !rest_is_end {
        return None;
    }
    let ks = rt.keyspace(&ks?)?;
    let table = String::from_utf8(table).ok()?;
    if !ks.sharded {
        return None;
    }
    let (route, targets) = match ks.table(&table)? {
        TableRouting::Reference => (
            RouteKind::Reference,
            Targets::Reference {
                sql: format!(
                    "ALTER TABLE {}.{} {verb} KEYS",
                    quote_ident(&ks.reference_schema()),
                    quote_ident(&table)
                ),
            },
        ),
        _ => (
            RouteKind::Scatter,
            Targets::Ls {
                template: format!(
                    "ALTER TABLE {}.{} {verb} KEYS",
                    crate::sql::LS_PLACEHOLDER,
                    quote_ident(&table)
                ),
                ls: (0..ks.logical_shards).collect(),
            },
        ),
    };
    Some(Plan::Exec(Box::new(Exec::plain(
        Some(ks.name.clone()),
        StmtKind::Ddl,
        route,
        targets,
    ))))
}

/// The sharded keyspace whose physical schema `name` is (`demo_0007`, `demo_ref`), if any.
pub fn physical_schema_of<'r>(name: &str, rt: &'r RoutingTable) -> Option<&'r str> {
    let (ks, suffix) = name.rsplit_once('_')?;
    let physical =
        suffix == "ref" || suffix.len() == 4 && suffix.bytes().all(|b| b.is_ascii_digit());
    let k = rt.keyspace(ks)?;
    (physical && k.sharded).then_some(k.name.as_str())
}

/// Refuses a statement that reaches past the session's keyspaces ([`Classified::reach`], and
/// physical schema names): 1227 for what needs a server-wide privilege, 1044 for a schema.
/// An admin user may run what [`Classified::admin`] says how to run (never a physical
/// schema's name: a logical shard is the router's to place).
///
/// # Errors
/// The refusal.
pub fn check_scope(
    c: &Classified,
    user: &str,
    admin: bool,
    rt: &RoutingTable,
) -> Result<(), SqlError> {
    use crate::sql::classify::Reach;
    let denied_db = |db: &str| {
        SqlError::new(
            1044,
            "42000",
            format!(
                "Access denied for user '{user}' to database '{db}' (the router's clients reach only their keyspaces)"
            ),
        )
    };
    match &c.reach {
        Some(_) if admin && c.admin.is_some() => {}
        Some(Reach::Privilege { what, privilege }) => {
            return Err(SqlError::new(
                1227,
                "42000",
                format!(
                    "Access denied; you need (at least one of) the {privilege} privilege(s) for this operation ({what} acts on a whole database server, which the router's clients may not do)"
                ),
            ))
        }
        Some(Reach::Schema(s)) => return Err(denied_db(s)),
        None => {}
    }
    for q in &c.qualifiers {
        if let Some(name) = std::str::from_utf8(q)
            .ok()
            .filter(|q| physical_schema_of(q, rt).is_some())
        {
            return Err(denied_db(name));
        }
    }
    Ok(())
}

/// `SHOW … STATUS` of routines limited to keyspace `ks`'s schema (the server's answer lists
/// every schema it has): the client's text with a `Db` condition added at token boundaries.
fn scoped_routine_status(sql: &[u8], f: crate::sql::classify::DbFilter, ks: &str) -> Vec<u8> {
    use crate::sql::classify::DbFilter;
    let db = format!("Db = '{}'", ks.replace('\\', "\\\\").replace('\'', "''"));
    let mut out = Vec::with_capacity(sql.len() + db.len() + 16);
    match f {
        DbFilter::None(at) => {
            out.extend_from_slice(&sql[..at]);
            out.extend_from_slice(format!(" WHERE {db}").as_bytes());
            out.extend_from_slice(&sql[at..]);
        }
        DbFilter::Like(at) => {
            out.extend_from_slice(&sql[..at]);
            out.extend_from_slice(format!("WHERE {db} AND Name ").as_bytes());
            out.extend_from_slice(&sql[at..]);
        }
        DbFilter::Where(start, end) => {
            out.extend_from_slice(&sql[..start]);
            out.extend_from_slice(format!("{db} AND (").as_bytes());
            out.extend_from_slice(&sql[start..end]);
            out.push(b')');
            out.extend_from_slice(&sql[end..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::scoped_routine_status;
    use crate::sql::classify::classify;

    fn scoped(sql: &str) -> String {
        let c = classify(sql.as_bytes(), &Default::default());
        let f = c.routine_status.expect("a routine status statement");
        String::from_utf8(scoped_routine_status(sql.as_bytes(), f, "app")).expect("utf8")
    }

    #[test]
    fn routine_status_is_limited_to_the_keyspace() {
        assert_eq!(
            scoped("SHOW FUNCTION STATUS"),
            "SHOW FUNCTION STATUS WHERE Db = 'app'"
        );
        assert_eq!(
            scoped("show procedure status like 'p%' -- x"),
            "show procedure status WHERE Db = 'app' AND Name like 'p%' -- x"
        );
        assert_eq!(
            scoped("SHOW FUNCTION STATUS WHERE Db = 'test' OR 1;"),
            "SHOW FUNCTION STATUS WHERE Db = 'app' AND (Db = 'test' OR 1);"
        );
        assert_eq!(
            scoped("SHOW PACKAGE BODY STATUS"),
            "SHOW PACKAGE BODY STATUS WHERE Db = 'app'"
        );
    }
}
