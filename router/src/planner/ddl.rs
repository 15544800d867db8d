//! DDL: sent to every logical shard (sharded tables) or to the keyspace's schema.

use super::plan::{Plan, StmtKind};
use super::resolve::Planner;

use crate::error::SqlError;
use crate::sql::rewrite::Edits;
use crate::topology::TableRouting;
use sqlparser::ast::{ObjectName, ObjectType, Statement};
use std::collections::BTreeSet;

impl<'a> Planner<'a> {
    pub(super) fn ddl(&self, stmt: &Statement) -> Result<Plan, SqlError> {
        if let Statement::CreateTable(c) = stmt {
            if c.query.is_some() || c.like.is_some() || c.clone.is_some() {
                return Err(SqlError::unsupported("CREATE TABLE ... AS SELECT or LIKE"));
            }
        }
        if let Statement::AlterTable(a) = stmt {
            let text = a.to_string().to_ascii_uppercase();
            if text.contains(" RENAME ") {
                return Err(SqlError::unsupported("renaming tables through the router"));
            }
        }
        let r = self.resolve(stmt)?;
        let Some(ks) = r.ks else {
            return Err(SqlError::unsupported("DDL on system schemas"));
        };
        let kinds: BTreeSet<&str> = r
            .tables
            .iter()
            .map(|t| match t.routing {
                TableRouting::Sharded { .. } => "sharded",
                TableRouting::Reference => "reference",
                TableRouting::Unsharded => "unsharded",
            })
            .collect();
        if kinds.len() > 1 {
            return Err(SqlError::unsupported(
                "one DDL statement over both sharded and reference tables",
            ));
        }
        let sql = self.qualified(&r, Edits::default())?;
        Ok(self.exec_for(ks, &r, sql, StmtKind::Ddl, None, None, false))
    }

    pub(super) fn drop(
        &self,
        stmt: &Statement,
        object_type: ObjectType,
        names: &[ObjectName],
        table: Option<&ObjectName>,
    ) -> Result<Plan, SqlError> {
        let list: Vec<&ObjectName> = match object_type {
            ObjectType::Table => names.iter().collect(),
            ObjectType::Index => table.into_iter().collect(),
            ObjectType::Database | ObjectType::Schema => {
                return Err(SqlError::unsupported("DROP DATABASE through the router"))
            }
            _ => return Err(SqlError::unsupported(format!("DROP {object_type}"))),
        };
        if list.is_empty() {
            return Err(SqlError::unsupported("DROP INDEX without ON table"));
        }
        let _ = stmt;
        let r = self.resolve_names(&list)?;
        let Some(ks) = r.ks else {
            return Err(SqlError::router("no table to drop"));
        };
        let sql = self.qualified(&r, Edits::default())?;
        Ok(self.exec_for(ks, &r, sql, StmtKind::Ddl, None, None, false))
    }
}
