//! What the planner produces: a [`Plan`] per statement, with its [`RouteKind`].

/// Where a statement goes, as reported in plans, logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    /// One logical shard (equality on the shard key, or an unsharded keyspace).
    One,
    /// Several logical shards (an `IN` list, a multi-row `INSERT`).
    Several,
    /// Every logical shard.
    Scatter,
    /// Reference tables: one physical shard for reads, all for writes.
    Reference,
    /// No table: any physical shard.
    Any,
    /// Answered by the router itself.
    Local,
}

impl RouteKind {
    /// The route's name in metrics, logs and the status page.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::One => "one",
            RouteKind::Several => "several",
            RouteKind::Scatter => "scatter",
            RouteKind::Reference => "reference",
            RouteKind::Any => "any",
            RouteKind::Local => "local",
        }
    }
}

/// Whether a statement reads, writes or changes schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StmtKind {
    Read,
    Write,
    Ddl,
}

/// The SQL to run and on which logical shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// One template for every listed logical shard (placeholder replaced per shard).
    Ls { template: String, ls: Vec<u32> },
    /// Different SQL per logical shard (a split `INSERT`).
    PerLs(Vec<(u32, String)>),
    /// Reference tables: SQL already qualified; reads go to one physical shard, writes and
    /// DDL to every physical shard of the keyspace.
    Reference { sql: String },
    /// No keyspace table: any physical shard, SQL as is.
    Any { sql: String },
    /// A statement on an unsharded keyspace, sent as the client's own bytes to the keyspace's
    /// physical shard with the keyspace's schema as the connection's default database;
    /// `reserve`: it makes connection-local state, so the session first reserves a connection
    /// there for its life.
    Verbatim { sql: Vec<u8>, reserve: bool },
}

/// A statement the backends run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    /// The keyspace whose placement resolves the targets (`None` for [`Targets::Any`]).
    pub keyspace: Option<String>,
    pub kind: StmtKind,
    pub route: RouteKind,
    pub targets: Targets,
    /// For reads over several shards: rows to skip and keep, applied by the router.
    pub limit: Option<(u64, u64)>,
    /// Whether per-shard selects of one physical shard may be joined with `UNION ALL`.
    pub unionable: bool,
    /// How the router merges per-shard results (sorting, aggregation), if it must.
    pub merge: Option<super::merge::MergeSpec>,
    /// For a statement on one logical shard of a sharded keyspace: the one `key = literal`
    /// term that chose it (the plan cache re-routes other values of the same shape by it).
    pub key_at: Option<KeyAt>,
    /// Whether select items got aliases copied from the statement's text (literals included),
    /// which the plan cache cannot re-bind.
    pub aliased_items: bool,
    /// For `REPLACE`, `INSERT IGNORE` and `INSERT … ON DUPLICATE KEY UPDATE` on a sharded
    /// table: the engine checks before running it that every unique key of the table holds
    /// the shard key (else a conflicting row may live on another logical shard).
    pub conflict: Option<Box<Conflict>>,
    /// A metadata question (`information_schema`) about a sharded keyspace, asked of one of
    /// its physical schemas: values in the answer that name a physical schema are mapped back
    /// to the keyspace's name.
    pub metadata: bool,
    /// String literals the planner read as stand-ins (see `sql::carry`), put back as the
    /// client's bytes in every statement sent.
    pub held: Option<std::sync::Arc<crate::sql::carry::Held>>,
    /// A `SQL_CALC_FOUND_ROWS` read: each logical shard's `FOUND_ROWS()` is read after its
    /// select, and their sum is what the session's `FOUND_ROWS()` answers next.
    pub found_rows: bool,
    /// `SET STATEMENT vars FOR`, written before every statement sent for this one.
    pub statement_prefix: Option<String>,
    /// Each statement runs with its logical shard's schema as the connection's default
    /// database (a multi-table `DELETE` that names a table it deletes from by its alias:
    /// MariaDB looks such names up in the default database, and answers 1046 without one).
    pub default_db: bool,
}

impl Exec {
    /// A statement sent as it is planned: no router-side merge or limit, no union of
    /// per-shard selects, no key literal, conflict check or metadata mapping.
    pub fn plain(
        keyspace: Option<String>,
        kind: StmtKind,
        route: RouteKind,
        targets: Targets,
    ) -> Exec {
        Exec {
            keyspace,
            kind,
            route,
            targets,
            limit: None,
            unionable: false,
            merge: None,
            key_at: None,
            aliased_items: false,
            conflict: None,
            metadata: false,
            held: None,
            found_rows: false,
            statement_prefix: None,
            default_db: false,
        }
    }
}

/// A write whose meaning depends on unique keys: see [`Exec::conflict`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub table: String,
    pub shard_key: String,
    /// The statement kind, as named in a refusal.
    pub action: &'static str,
    /// Columns with a serving unique lookup vindex: a unique key that holds one is unique
    /// across every logical shard too.
    pub lookups: Vec<String>,
}

/// The literal that decides a statement's logical shard, and how it maps to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAt {
    /// Byte offset of the literal in the statement as the client sent it.
    pub at: usize,
    pub vindex: tessera_topo::VindexKind,
    pub key_type: tessera_topo::KeyType,
}

/// Things the router answers or does itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    ShowDatabases,
    ShowTables {
        keyspace: String,
        full: bool,
    },
    Use(String),
    /// A statement of comments only: answered with OK, as MariaDB does.
    Nothing,
    /// `BEGIN` / `START TRANSACTION [READ ONLY | READ WRITE | WITH CONSISTENT SNAPSHOT]`.
    Begin(TxnStart),
    Commit,
    Rollback,
    /// `SAVEPOINT name`, `ROLLBACK TO [SAVEPOINT] name`, `RELEASE SAVEPOINT name`: run on
    /// every backend connection the transaction holds (and set on those it pins later).
    Savepoint(SavepointOp),
    SetAutocommit(bool),
    /// `SET autocommit = …, x = …`: autocommit kept by the router, the rest (a `SET` of its
    /// own) replayed like [`Local::Set`].
    SetAutocommitAnd(bool, String),
    /// A `SET` replayed on every backend connection the session uses (the SQL as sent).
    Set(String),
    /// An `INSERT` whose auto-increment column is fed by a sequence.
    Sequence(Box<SequenceInsert>),
    /// An `UPDATE` that sets a sharded table's shard key to a literal: rows that change
    /// logical shard are moved (delete + insert) in one transaction.
    MoveRows(Box<MoveRows>),
    /// A join of two sharded tables not on their shard keys: nested loop with batched lookups.
    CrossJoin(Box<CrossJoin>),
    /// A statement on a sharded table with lookup vindexes: routed by one, or a write that
    /// keeps them (see `engine/lookup.rs`).
    Lookup(Box<LookupPlan>),
    /// A read answered by MariaDB over the gathered rows of its sharded tables (see
    /// `planner/gather.rs`).
    Gather(Box<Gather>),
    /// `INSERT … SELECT` with sharded tables on either side: the select's rows are read
    /// through the router and written as multi-row inserts routed by their shard key (see
    /// `engine/insert_select.rs`).
    InsertSelect(Box<InsertSelect>),
    /// An `UPDATE` or `DELETE` of one sharded table whose subqueries read other sharded
    /// tables: the subqueries are answered first and written into the statement as values,
    /// which is then planned again (see `engine/insert_select.rs`).
    SubqueriesFirst(Box<SubqueriesFirst>),
    /// An `UPDATE` or `DELETE` with `LIMIT` (no `ORDER BY`) over several logical shards: run
    /// on one logical shard after another, each with the rows still to go as its limit.
    LimitedWrite(Box<LimitedWrite>),
    /// An `UPDATE` or `DELETE` with `ORDER BY` and `LIMIT` over several logical shards: each
    /// logical shard's first rows in that order are read and locked, MariaDB picks the first
    /// of them all over a temporary table, and those rows (by primary key) are written.
    OrderedWrite(Box<OrderedWrite>),
}

/// See [`Local::OrderedWrite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderedWrite {
    pub keyspace: String,
    /// The table written (its name in the keyspace).
    pub table: String,
    /// The statement for one logical shard (its schema [`crate::sql::LS_PLACEHOLDER`]).
    pub template: String,
    pub ls: Vec<u32>,
    /// The statement's `LIMIT`.
    pub limit: u64,
    /// An `UPDATE` rather than a `DELETE`.
    pub update: bool,
}

/// See [`Local::LimitedWrite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitedWrite {
    pub keyspace: String,
    /// The statement for one logical shard, its limit's count [`LIMIT_PLACEHOLDER`].
    pub template: String,
    pub ls: Vec<u32>,
    /// The statement's `LIMIT`.
    pub limit: u64,
    /// An `UPDATE` (its limit counts the rows it matched) rather than a `DELETE`.
    pub update: bool,
}

/// Where a [`LimitedWrite`]'s template takes the rows still to go.
pub const LIMIT_PLACEHOLDER: &str = "`__tessera_limit__`";

/// See [`Local::SubqueriesFirst`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubqueriesFirst {
    pub keyspace: String,
    /// The statement as written.
    pub sql: String,
    /// Its outermost subqueries, in order.
    pub subqueries: Vec<Subquery>,
}

/// A subquery of a statement: `sql[start..end]` is `(SELECT …)`, or `EXISTS (SELECT …)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subquery {
    pub start: usize,
    pub end: usize,
    pub kind: SubqueryKind,
}

/// How a subquery's rows become values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubqueryKind {
    /// After `IN` / `NOT IN`: a list of rows.
    In,
    /// `EXISTS (…)`: true or false.
    Exists,
    /// After `ANY`/`SOME`/`ALL`: a list of values (one column), as a table value constructor.
    Quantified,
    /// Anywhere else: one row or none (NULL); more is error 1242.
    Scalar,
}

/// See [`Local::InsertSelect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertSelect {
    /// The keyspace the statement is about (the session's or the one its names give).
    pub keyspace: String,
    /// The statement before its select: `INSERT [IGNORE] INTO t (cols) `.
    pub head: String,
    /// The select, as written.
    pub select: String,
    /// What follows the select (`ON DUPLICATE KEY UPDATE …`), as written.
    pub tail: String,
}

/// See [`Local::Gather`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gather {
    pub keyspace: String,
    /// The sharded tables whose rows are gathered.
    pub tables: Vec<String>,
    /// Conditions of the statement's `WHERE` that only a gathered table's own rows decide,
    /// applied when its rows are read (the statement applies them again). See
    /// `planner/gather.rs`.
    pub filters: Vec<GatherFilter>,
    /// The statement, its tables qualified with the keyspace's reference schema (where the
    /// temporary tables are made).
    pub sql: String,
}

/// Conditions applied to one gathered table's rows as they are read ([`Gather::filters`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatherFilter {
    pub table: String,
    /// The name the conditions call the table by (its alias, or its name).
    pub known_as: String,
    /// The conditions, each in parentheses, joined by `AND`.
    pub cond: String,
    /// The logical shards that can hold rows meeting them, when they pin the shard key
    /// (`None`: every logical shard).
    pub ls: Option<Vec<u32>>,
}

/// See [`Local::Lookup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupPlan {
    /// The statement, planned as if there were no lookup (all logical shards unless the
    /// shard key picked some).
    pub exec: Exec,
    pub keyspace: String,
    pub table: String,
    /// Route by these values of this lookup: the logical shards its table maps them to
    /// replace `exec`'s.
    pub route: Option<(crate::topology::Lookup, Vec<KeyLiteral>)>,
    pub write: LookupWrite,
}

/// What a statement on a table with lookup vindexes writes to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupWrite {
    /// Nothing (reads, and updates of other columns).
    None,
    Insert(Box<LookupInsert>),
    Delete(Box<LookupDelete>),
    Update(Box<LookupUpdate>),
}

/// An `UPDATE` that sets lookup columns: the rows it changes are read (locked) first, their
/// new values' entries written, their old values' removed after the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupUpdate {
    /// `SELECT shard_key, lookup columns… FROM … WHERE … FOR UPDATE`, with the logical-shard
    /// placeholder.
    pub select: String,
    /// Each lookup column the statement sets (its index in `lookups`) and its new value
    /// (`None`: NULL).
    pub sets: Vec<(usize, Option<KeyLiteral>)>,
    pub lookups: Vec<crate::topology::Lookup>,
    pub vindex: tessera_topo::VindexKind,
    pub key_type: tessera_topo::KeyType,
}

/// How an `INSERT` resolves a conflict on a unique key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertAction {
    Insert,
    Ignore,
    Replace,
    Upsert,
}

/// An `INSERT` or `REPLACE` into a table with lookup vindexes, split into its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupInsert {
    pub action: InsertAction,
    /// The statement before its first row (table qualified with the logical-shard
    /// placeholder) and after its last.
    pub head: String,
    pub tail: String,
    pub rows: Vec<LookupRow>,
    /// Every lookup of the table (write-only ones too), in the order of [`LookupRow::values`].
    pub lookups: Vec<crate::topology::Lookup>,
}

/// One row of a [`LookupInsert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupRow {
    /// The row's text, parentheses included.
    pub text: String,
    pub ls: u32,
    pub ksid: u64,
    /// Each lookup column's value (`None`: NULL, which no lookup holds).
    pub values: Vec<Option<KeyLiteral>>,
}

/// A `DELETE` from a table with lookup vindexes: the values of the rows it deletes are read
/// first, and their lookup entries removed once the deletion commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupDelete {
    /// `SELECT shard_key, lookup columns… FROM … WHERE …` with the logical-shard placeholder.
    pub select: String,
    pub lookups: Vec<crate::topology::Lookup>,
    pub vindex: tessera_topo::VindexKind,
    pub key_type: tessera_topo::KeyType,
}

/// How a transaction starts on each backend connection it pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnStart {
    /// The statement each participant runs: `START TRANSACTION` with the client's options.
    pub sql: String,
    /// `READ ONLY`: OK packets carry the in-read-only-transaction status flag.
    pub read_only: bool,
}

impl Default for TxnStart {
    fn default() -> Self {
        TxnStart {
            sql: "START TRANSACTION".into(),
            read_only: false,
        }
    }
}

/// A savepoint statement, by kind and savepoint name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SavepointOp {
    Set(String),
    RollbackTo(String),
    Release(String),
}

/// A cross-shard join (see `planner/crossjoin.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossJoin {
    pub keyspace: String,
    /// The left table's statement: its select items, then the join key.
    pub left_sql: String,
    /// Position of the join key in the left result.
    pub left_key: usize,
    /// `keyspace.table AS alias` of the right table.
    pub right_from: String,
    /// The right table's select items.
    pub right_items: Vec<String>,
    /// The right join column's text.
    pub right_key: String,
    /// Conditions on the right table alone.
    pub right_where: Vec<String>,
    /// For each client column: `(from the right side, position in that side's items)`.
    pub output: Vec<(bool, usize)>,
    /// `LEFT JOIN`: left rows without a match get NULLs.
    pub left_outer: bool,
}

/// An `UPDATE` that changes rows' shard key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveRows {
    /// The `UPDATE` as it runs where the rows are now.
    pub update: Exec,
    pub table: String,
    /// The shard-key column and its new value.
    pub column: String,
    pub value: KeyLiteral,
    /// The logical shard the new value maps to.
    pub new_ls: u32,
}

/// A literal shard-key value, as the client wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLiteral {
    Int(i128),
    /// A number with a fraction or exponent.
    Num(String),
    Str(String),
}

/// An `INSERT` that needs ids from a sequence before it can be routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceInsert {
    pub column: String,
    /// The sequence's keyspace and table.
    pub keyspace: String,
    pub table: String,
    /// Where `, column` goes in the column list.
    pub column_at: usize,
    /// Where `, id` goes in each row (before its closing parenthesis).
    pub row_ends: Vec<usize>,
    pub sql: String,
}

impl SequenceInsert {
    /// Returns the statement with `ids` written in.
    ///
    /// # Errors
    /// As [`crate::sql::rewrite::Edits::apply`].
    pub fn with_ids(&self, ids: &[u64]) -> Result<String, crate::sql::rewrite::RewriteError> {
        let mut e = crate::sql::rewrite::Edits::default();
        e.insert(
            self.column_at,
            format!(", {}", crate::sql::rewrite::quote_ident(&self.column)),
        );
        for (at, id) in self.row_ends.iter().zip(ids) {
            e.insert(*at, format!(", {id}"));
        }
        e.apply(&self.sql)
    }
}

/// The planner's answer for one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Local(Local),
    Exec(Box<Exec>),
}

impl Plan {
    /// Returns the route kind, for reports and tests.
    pub fn route(&self) -> RouteKind {
        match self {
            Plan::Local(_) => RouteKind::Local,
            Plan::Exec(e) => e.route,
        }
    }
}
