//! Variables carried to every backend connection of a session as values, not as the
//! expressions that made them.
//!
//! A session's `SET`s are replayed on each backend connection it uses. Replaying `SET @t =
//! NOW()`, `SET @n = @n + 1` or `SET timestamp = UNIX_TIMESTAMP()` would compute the value
//! again, later, on another server; and `SELECT @v := …` or `… INTO @v` is no `SET` at all.
//! So after any statement that assigns user variables, or a `SET` that gives a session system
//! variable anything but a literal, the router reads the values back from the connection that
//! ran it and keeps, per variable, one `SET` of that value with its type: `NULL`, an integer,
//! a decimal or a double as the server wrote it (doubles print with every digit they need), a
//! string as its bytes in its own character set and collation.

use crate::backend::Conn;
use crate::session::Session;
use crate::sql::classify::Assigned;
use mysql_async::consts::ColumnType;
use mysql_async::Value;

/// A variable as the router names it in its own statements: `@`name`` or `@@session.name`
/// (system variable names are plain words, checked when they were read).
fn reference(v: &Assigned) -> Option<String> {
    match v {
        Assigned::User(n) => Some(format!(
            "@`{}`",
            std::str::from_utf8(n).ok()?.replace('`', "``")
        )),
        Assigned::System(n) => Some(format!("@@session.{n}")),
    }
}

/// The prefix of the `SET` that carries variable `v` (see [`set_of`]).
fn prefix(v: &Assigned) -> Option<String> {
    match v {
        Assigned::User(_) => Some(format!("SET {} = ", reference(v)?)),
        Assigned::System(n) => Some(format!("SET SESSION {n} = ")),
    }
}

/// The `SET` that gives another connection variable `name` with the value `v` of type `ty`
/// (`charset`, `collation`: of a string value); `None` when the server's answer cannot be
/// written back exactly (a character set or collation name that is not a plain word), and the
/// variable then stays as the statement that made it.
fn set_of(
    prefix: &str,
    v: &Value,
    ty: ColumnType,
    charset: &[u8],
    collation: &[u8],
) -> Option<String> {
    let text = match v {
        Value::NULL => return Some(format!("{prefix}NULL")),
        Value::Bytes(b) => b.as_slice(),
        other => return Some(format!("{prefix}{}", other.as_sql(false))),
    };
    // A number as the server wrote it (only digits, signs, a point, an exponent).
    let number = std::str::from_utf8(text).ok().filter(|t| {
        !t.is_empty()
            && t.bytes()
                .all(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
    });
    fn name(b: &[u8]) -> Option<&str> {
        std::str::from_utf8(b)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'))
    }
    let hex: String = text.iter().map(|b| format!("{b:02X}")).collect();
    let literal = match (ty, number) {
        (
            ColumnType::MYSQL_TYPE_LONGLONG
            | ColumnType::MYSQL_TYPE_LONG
            | ColumnType::MYSQL_TYPE_INT24
            | ColumnType::MYSQL_TYPE_SHORT
            | ColumnType::MYSQL_TYPE_TINY
            | ColumnType::MYSQL_TYPE_NEWDECIMAL
            | ColumnType::MYSQL_TYPE_DECIMAL,
            Some(n),
        ) => n.to_string(),
        // A literal with an exponent is a double.
        (ColumnType::MYSQL_TYPE_DOUBLE | ColumnType::MYSQL_TYPE_FLOAT, Some(n)) => {
            if n.contains(['e', 'E']) {
                n.to_string()
            } else {
                format!("{n}e0")
            }
        }
        _ if charset.eq_ignore_ascii_case(b"binary") || charset.is_empty() => {
            format!("_binary X'{hex}'")
        }
        _ => format!(
            "CONVERT(X'{hex}' USING {}) COLLATE {}",
            name(charset)?,
            name(collation)?
        ),
    };
    Some(format!("{prefix}{literal}"))
}

/// Reads variables `vars` on `conn`: for each, the `SET` that carries its value.
///
/// # Errors
/// The backend's, reading them.
pub(super) async fn capture(
    conn: &mut Conn,
    vars: &[Assigned],
) -> Result<Vec<(Assigned, String)>, mysql_async::Error> {
    // Names that cannot be written into the router's own statements (not UTF-8): their
    // variables stay where they were made (as `SET`s, replayed as written).
    let vars: Vec<(&Assigned, String, String)> = vars
        .iter()
        .filter_map(|v| Some((v, reference(v)?, prefix(v)?)))
        .collect();
    if vars.is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<String> = vars
        .iter()
        .map(|(_, r, _)| format!("{r}, CHARSET({r}), COLLATION({r})"))
        .collect();
    let mut res = conn
        .query_iter(format!("SELECT {}", items.join(", ")))
        .await?;
    let types: Vec<ColumnType> = res
        .columns()
        .map(|c| c.iter().map(|c| c.column_type()).collect())
        .unwrap_or_default();
    let row: Option<mysql_async::Row> = res.next().await?;
    res.drop_result().await?;
    let Some(row) = row else {
        return Ok(Vec::new());
    };
    let values = row.unwrap();
    let bytes = |v: Option<&Value>| match v {
        Some(Value::Bytes(b)) => b.clone(),
        _ => Vec::new(),
    };
    Ok(vars
        .iter()
        .enumerate()
        .filter_map(|(i, (v, _, p))| {
            let value = values.get(3 * i).cloned().unwrap_or(Value::NULL);
            let ty = types
                .get(3 * i)
                .copied()
                .unwrap_or(ColumnType::MYSQL_TYPE_NULL);
            let cs = bytes(values.get(3 * i + 1));
            let coll = bytes(values.get(3 * i + 2));
            Some(((*v).clone(), set_of(p, &value, ty, &cs, &coll)?))
        })
        .collect())
}

/// Whether kept `SET`s `later` replay the same without an earlier one: none of them reads a
/// variable, and they are plain ASCII (read the same whatever the character sets).
pub(super) fn replays_alone(later: &[String]) -> bool {
    !later.iter().any(|s| s.contains('@') || !s.is_ascii())
}

/// Keeps the carried `SET`s in the session's list: each variable's newest value replaces the
/// `SET` that carried its last one, unless a later entry may read it (one that names a
/// variable), which must replay after the value it saw; then the new one is added after.
pub(super) fn keep(session: &mut Session, carried: Vec<(Assigned, String)>) {
    for (v, set) in carried {
        let Some(p) = prefix(&v) else { continue };
        if let Some(i) = session.sets.iter().rposition(|s| s.starts_with(&p)) {
            if replays_alone(&session.sets[i + 1..]) {
                session.sets.remove(i);
            }
        }
        session.sets.push(set);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_of_ok(p: &str, v: &Value, ty: ColumnType, cs: &[u8], coll: &[u8]) -> String {
        set_of(p, v, ty, cs, coll).expect("written")
    }

    #[test]
    fn names_that_are_not_plain_words_are_not_written() {
        let v = Value::Bytes(b"x".to_vec());
        let s = ColumnType::MYSQL_TYPE_VAR_STRING;
        assert!(set_of("SET @`s` = ", &v, s, b"utf8mb4", b"x) OR (1").is_none());
        assert!(set_of("SET @`s` = ", &v, s, b"\xff", b"a").is_none());
    }

    #[test]
    fn values_are_written_with_their_types() {
        let b = |s: &str| Value::Bytes(s.as_bytes().to_vec());
        let int = ColumnType::MYSQL_TYPE_LONGLONG;
        assert_eq!(
            set_of_ok("SET @`n` = ", &b("-5"), int, b"binary", b"binary"),
            "SET @`n` = -5"
        );
        assert_eq!(
            set_of_ok(
                "SET @`d` = ",
                &b("0.30000000000000004"),
                ColumnType::MYSQL_TYPE_DOUBLE,
                b"binary",
                b""
            ),
            "SET @`d` = 0.30000000000000004e0"
        );
        assert_eq!(
            set_of_ok(
                "SET @`d` = ",
                &b("1e301"),
                ColumnType::MYSQL_TYPE_DOUBLE,
                b"binary",
                b""
            ),
            "SET @`d` = 1e301"
        );
        assert_eq!(
            set_of_ok(
                "SET @`m` = ",
                &b("1.50"),
                ColumnType::MYSQL_TYPE_NEWDECIMAL,
                b"binary",
                b""
            ),
            "SET @`m` = 1.50"
        );
        assert_eq!(
            set_of_ok(
                "SET @`s` = ",
                &b("é'"),
                ColumnType::MYSQL_TYPE_VAR_STRING,
                b"utf8mb4",
                b"utf8mb4_general_ci"
            ),
            "SET @`s` = CONVERT(X'C3A927' USING utf8mb4) COLLATE utf8mb4_general_ci"
        );
        assert_eq!(
            set_of_ok(
                "SET @`s` = ",
                &b("x"),
                ColumnType::MYSQL_TYPE_BLOB,
                b"binary",
                b"binary"
            ),
            "SET @`s` = _binary X'78'"
        );
        assert_eq!(
            set_of_ok(
                &prefix(&Assigned::User(b"a`b".to_vec())).expect("utf8"),
                &Value::NULL,
                int,
                b"",
                b""
            ),
            "SET @`a``b` = NULL"
        );
        // Text that is not a number is never written bare.
        assert_eq!(
            set_of_ok("SET @`x` = ", &b("1; DROP"), int, b"binary", b"binary"),
            "SET @`x` = _binary X'313B2044524F50'"
        );
    }
}
