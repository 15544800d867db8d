//! Name resolution: the keyspace and routing of every table a statement names, and the
//! statement's text with each table qualified by the schema it runs in.

use super::ast::ident_parts;
use super::plan::{Exec, Plan, RouteKind, StmtKind, Targets};

use crate::error::SqlError;
use crate::sql::rewrite::{quote_ident, Edits, Offsets};
use crate::sql::LS_PLACEHOLDER;
use crate::topology::{KeyspaceRouting, RoutingTable, TableRouting};
use sqlparser::ast::{visit_expressions, visit_relations, Expr, Ident, ObjectName, Statement};
use std::collections::HashSet;
use std::ops::ControlFlow;

/// Schemas of the server itself, not of any keyspace.
const SYSTEM_SCHEMAS: &[&str] = &["information_schema", "mysql", "performance_schema", "sys"];

/// The keyspace of two parts of a statement: the one either names (they must not name two).
pub(super) fn one_keyspace<'k>(
    a: Option<&'k KeyspaceRouting>,
    b: Option<&'k KeyspaceRouting>,
) -> Result<Option<&'k KeyspaceRouting>, SqlError> {
    match (a, b) {
        (Some(a), Some(b)) if a.name != b.name => Err(SqlError::unsupported(format!(
            "statements across keyspaces ({} and {})",
            a.name, b.name
        ))),
        (a, b) => Ok(a.or(b)),
    }
}

/// Splits a table name into its optional schema and the table.
pub(super) fn split_name(name: &ObjectName) -> Result<(Option<&Ident>, &Ident), SqlError> {
    let parts = ident_parts(name).ok_or_else(|| SqlError::unsupported("computed table names"))?;
    match parts.as_slice() {
        [t] => Ok((None, *t)),
        [d, t] => Ok((Some(*d), *t)),
        _ => Err(SqlError::unsupported(
            "table names with more than two parts",
        )),
    }
}

pub(super) struct Planner<'a> {
    pub(super) sql: &'a str,
    pub(super) offsets: Offsets,
    pub(super) session_ks: Option<&'a str>,
    pub(super) rt: &'a RoutingTable,
    pub(super) last_insert_id: u64,
}

/// A table the statement names, resolved against the vschema.
#[derive(Debug, Clone)]
pub(super) struct TableRef {
    pub(super) name: String,
    pub(super) routing: TableRouting,
    /// Byte range to replace with `schema.` (the qualifier, or an empty range before the name).
    pub(super) qualify: (usize, usize),
}

/// Every table of a statement, all in one keyspace.
pub(super) struct Resolved<'a> {
    pub(super) ks: Option<&'a KeyspaceRouting>,
    pub(super) system: bool,
    pub(super) tables: Vec<TableRef>,
    /// `keyspace.table.column` references: the byte range of `keyspace` and the table.
    pub(super) column_quals: Vec<(usize, usize, String)>,
    /// Names qualified like tables that are not relations of their own: the tables a
    /// multi-table `DELETE` deletes from, named by table (not by alias).
    pub(super) targets: Vec<TableRef>,
}

impl Resolved<'_> {
    pub(super) fn sharded(&self) -> impl Iterator<Item = &TableRef> {
        self.tables
            .iter()
            .filter(|t| matches!(t.routing, TableRouting::Sharded { .. }))
    }
}

impl<'a> Planner<'a> {
    /// Resolves every relation of `stmt` to one keyspace.
    pub(super) fn resolve<V: sqlparser::ast::Visit>(
        &self,
        node: &V,
    ) -> Result<Resolved<'a>, SqlError> {
        self.resolve_skipping(node, &HashSet::new())
    }

    /// Resolves a statement whose query may define CTEs, with them in scope as MariaDB has
    /// them: in a CTE's own definition a name means a CTE defined before it in the `WITH`
    /// list (or, under `RECURSIVE`, any of them), else a table, so `WITH t AS (SELECT … FROM
    /// t)` reads table `t`; in the rest of the statement it means a CTE of the list.
    pub(super) fn resolve_with_ctes(&self, stmt: &Statement) -> Result<Resolved<'a>, SqlError> {
        let Statement::Query(q) = stmt else {
            return self.resolve(stmt);
        };
        let Some(with) = &q.with else {
            return self.resolve(stmt);
        };
        let all: HashSet<String> = with
            .cte_tables
            .iter()
            .map(|c| c.alias.name.value.clone())
            .collect();
        let mut parts = Vec::with_capacity(with.cte_tables.len() + 1);
        let mut before = HashSet::new();
        for cte in &with.cte_tables {
            let scope = if with.recursive { &all } else { &before };
            parts.push(self.resolve_skipping(cte.query.as_ref(), scope)?);
            before.insert(cte.alias.name.value.clone());
        }
        let mut rest = q.as_ref().clone();
        rest.with = None;
        parts.push(self.resolve_skipping(&rest, &all)?);
        let mut out = Resolved {
            ks: None,
            system: false,
            tables: Vec::new(),
            column_quals: Vec::new(),
            targets: Vec::new(),
        };
        for part in parts {
            out.ks = one_keyspace(out.ks, part.ks)?;
            out.system |= part.system;
            out.tables.extend(part.tables);
            out.column_quals.extend(part.column_quals);
        }
        if out.system && out.ks.is_some() {
            return Err(SqlError::unsupported(
                "joining system schemas with keyspace tables",
            ));
        }
        Ok(out)
    }

    pub(super) fn resolve_skipping<V: sqlparser::ast::Visit>(
        &self,
        node: &V,
        ctes: &HashSet<String>,
    ) -> Result<Resolved<'a>, SqlError> {
        let mut names: Vec<ObjectName> = Vec::new();
        let _ = visit_relations(node, |n| {
            names.push(n.clone());
            ControlFlow::<()>::Continue(())
        });
        let mut ks: Option<&'a KeyspaceRouting> = None;
        let mut system = false;
        let mut tables = Vec::new();
        for name in names {
            let (db, table) = split_name(&name)?;
            if db.is_none() && ctes.contains(&table.value) {
                continue;
            }
            // `FROM DUAL` (unquoted) names no table.
            if db.is_none()
                && table.quote_style.is_none()
                && table.value.eq_ignore_ascii_case("DUAL")
            {
                continue;
            }
            if let Some(d) = db {
                if SYSTEM_SCHEMAS.contains(&d.value.to_ascii_lowercase().as_str()) {
                    system = true;
                    continue;
                }
            }
            let mut k = self.keyspace_of(db)?;
            // A table `tessera movetables` moved is the other keyspace's.
            if let Some((to, switching)) = k.moved_to(&table.value) {
                if switching {
                    return Err(SqlError::switching(&k.name, &table.value, to));
                }
                k = self
                    .rt
                    .keyspace(to)
                    .ok_or_else(|| SqlError::unknown_database(to))?;
            }
            ks = one_keyspace(ks, Some(k))?;
            let routing = k
                .table(&table.value)
                .ok_or_else(|| SqlError::unknown_table(&k.name, &table.value))?;
            let tspan = table.span;
            let start = match db {
                Some(d) => self.offsets.byte(self.sql, d.span.start),
                None => self.offsets.byte(self.sql, tspan.start),
            };
            let end = self.offsets.byte(self.sql, tspan.start);
            let (Some(start), Some(end)) = (start, end) else {
                return Err(SqlError::router(format!(
                    "cannot locate table {} in the statement",
                    table.value
                )));
            };
            tables.push(TableRef {
                name: table.value.clone(),
                routing,
                qualify: (start, end),
            });
        }
        if system && ks.is_some() {
            return Err(SqlError::unsupported(
                "joining system schemas with keyspace tables",
            ));
        }
        // Columns written `keyspace.table.column` name the keyspace, which is not a backend
        // schema: their first part is rewritten like the table's qualifier.
        let mut column_quals = Vec::new();
        if let Some(k) = ks {
            let _ = visit_expressions(node, |e| {
                if let Expr::CompoundIdentifier(parts) = e {
                    if parts.len() == 3 && parts[0].value == k.name {
                        if let (Some(s), Some(en)) = (
                            self.offsets.byte(self.sql, parts[0].span.start),
                            self.offsets.byte(self.sql, parts[1].span.start),
                        ) {
                            column_quals.push((s, en, parts[1].value.clone()));
                        }
                    }
                }
                ControlFlow::<()>::Continue(())
            });
        }
        Ok(Resolved {
            ks,
            system,
            tables,
            column_quals,
            targets: Vec::new(),
        })
    }

    /// Returns the keyspace a table name's schema part names (the session's when absent).
    pub(super) fn keyspace_of(&self, db: Option<&Ident>) -> Result<&'a KeyspaceRouting, SqlError> {
        let ks_name = match db {
            Some(d) => d.value.as_str(),
            None => self.session_ks.ok_or_else(SqlError::no_database)?,
        };
        self.rt
            .keyspace(ks_name)
            .ok_or_else(|| SqlError::unknown_database(ks_name))
    }

    /// Qualifies every resolved table: sharded ones with the placeholder, reference ones with
    /// the reference schema, unsharded ones with the keyspace's schema.
    pub(super) fn qualified(&self, r: &Resolved<'_>, extra: Edits) -> Result<String, SqlError> {
        let mut edits = extra;
        for (s, e, text) in self.qualify_edits(r)? {
            edits.replace(s, e, text);
        }
        Ok(edits.apply(self.sql)?)
    }

    /// What [`Planner::qualified`] replaces: `(start, end, text)` for each table's (and each
    /// `keyspace.table.column`'s) qualifier.
    pub(super) fn qualify_edits(
        &self,
        r: &Resolved<'_>,
    ) -> Result<Vec<(usize, usize, String)>, SqlError> {
        let Some(ks) = r.ks else {
            return Ok(Vec::new());
        };
        let schema_of = |routing: &TableRouting| match routing {
            TableRouting::Sharded { .. } => LS_PLACEHOLDER.to_string(),
            TableRouting::Reference => quote_ident(&ks.reference_schema()),
            TableRouting::Unsharded => quote_ident(&ks.schema(0)),
        };
        let mut out = Vec::new();
        for t in r.tables.iter().chain(&r.targets) {
            out.push((
                t.qualify.0,
                t.qualify.1,
                format!("{}.", schema_of(&t.routing)),
            ));
        }
        for (s, e, table) in &r.column_quals {
            let routing = ks
                .table(table)
                .ok_or_else(|| SqlError::unknown_table(&ks.name, table))?;
            out.push((*s, *e, format!("{}.", schema_of(&routing))));
        }
        Ok(out)
    }

    pub(super) fn any(&self, sql: String, kind: StmtKind) -> Plan {
        Plan::Exec(Box::new(Exec::plain(
            None,
            kind,
            RouteKind::Any,
            Targets::Any { sql },
        )))
    }

    /// Plans a statement that reads one table's metadata: the first logical shard holds it.
    pub(super) fn read_first_shard(&self, r: Resolved<'a>) -> Result<Plan, SqlError> {
        let Some(ks) = r.ks else {
            return Ok(self.any(self.sql.to_string(), StmtKind::Read));
        };
        let sql = self.qualified(&r, Edits::default())?;
        Ok(self.exec_for(ks, &r, sql, StmtKind::Read, Some(vec![0]), None, false))
    }

    pub(super) fn show_on_table(&self, name: &ObjectName) -> Result<Plan, SqlError> {
        let r = self.resolve_names(&[name])?;
        self.read_first_shard(r)
    }

    /// Resolves bare table names (of DROP, SHOW CREATE, DESCRIBE) like relations.
    pub(super) fn resolve_names(&self, list: &[&ObjectName]) -> Result<Resolved<'a>, SqlError> {
        let mut tables = Vec::new();
        let mut ks: Option<&'a KeyspaceRouting> = None;
        for name in list {
            let (db, t) = split_name(name)?;
            let k = self.keyspace_of(db)?;
            ks = one_keyspace(ks, Some(k))?;
            let routing = k
                .table(&t.value)
                .ok_or_else(|| SqlError::unknown_table(&k.name, &t.value))?;
            let start = self.offsets.byte(self.sql, db.unwrap_or(t).span.start);
            let end = self.offsets.byte(self.sql, t.span.start);
            let (Some(start), Some(end)) = (start, end) else {
                return Err(SqlError::router("cannot locate the table"));
            };
            tables.push(TableRef {
                name: t.value.clone(),
                routing,
                qualify: (start, end),
            });
        }
        Ok(Resolved {
            ks,
            system: false,
            tables,
            column_quals: Vec::new(),
            targets: Vec::new(),
        })
    }

    /// Builds an [`Exec`] over `ls` (all logical shards when `None`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn exec_for(
        &self,
        ks: &KeyspaceRouting,
        r: &Resolved<'_>,
        sql: String,
        kind: StmtKind,
        ls: Option<Vec<u32>>,
        limit: Option<(u64, u64)>,
        unionable: bool,
    ) -> Plan {
        let only_reference = r
            .tables
            .iter()
            .all(|t| matches!(t.routing, TableRouting::Reference));
        if ks.sharded && only_reference && !r.tables.is_empty() {
            return Plan::Exec(Box::new(Exec::plain(
                Some(ks.name.clone()),
                kind,
                RouteKind::Reference,
                Targets::Reference { sql },
            )));
        }
        let ls = if ks.sharded {
            ls.unwrap_or_else(|| (0..ks.logical_shards).collect())
        } else {
            vec![0]
        };
        let route = match (ks.sharded, ls.len()) {
            (false, _) | (true, 1) => RouteKind::One,
            (true, n) if n as u32 == ks.logical_shards => RouteKind::Scatter,
            _ => RouteKind::Several,
        };
        Plan::Exec(Box::new(Exec {
            limit: if route == RouteKind::One { None } else { limit },
            unionable: unionable && route != RouteKind::One,
            ..Exec::plain(
                Some(ks.name.clone()),
                kind,
                route,
                Targets::Ls { template: sql, ls },
            )
        }))
    }
}
