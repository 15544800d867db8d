//! Splitting a multi-statement batch (`CLIENT_MULTI_STATEMENTS`) into its statements, at
//! the `;` that stand outside quoted strings, quoted identifiers and comments.

/// Returns the byte ranges of the statements of `sql`, each without its `;`, in order; pieces
/// that hold only whitespace and comments after the first statement are left out (a batch
/// ending in `;` has no empty last statement). A batch of one statement is one range.
pub fn split_statements(sql: &str) -> Vec<(usize, usize)> {
    split_bytes(sql.as_bytes(), &super::lex::Mode::default())
}

/// [`split_statements`] of bytes lexed as `mode` says. A stored-program definition (its body
/// holds `;`) is one statement to its end, as MariaDB reads it.
pub fn split_bytes(sql: &[u8], mode: &super::lex::Mode) -> Vec<(usize, usize)> {
    use super::lex::Lexer;
    if is_program(sql, mode) {
        return vec![(0, sql.len())];
    }
    let mut out = Vec::new();
    let mut start = 0;
    super::rewrite::scan_bytes(sql, mode, |m| {
        if let super::rewrite::Mark::Semicolon(at) = m {
            out.push((start, at));
            start = at + 1;
        }
    });
    out.push((start, sql.len()));
    let blank = |&(s, e): &(usize, usize)| Lexer::new(&sql[s..e], *mode).all(|t| t.is_blank());
    let first_kept = out.first().copied();
    let mut kept: Vec<(usize, usize)> = out.into_iter().filter(|r| !blank(r)).collect();
    if kept.is_empty() {
        // A batch of nothing but comments is one (comment-only) statement.
        kept.extend(first_kept);
    }
    kept
}

/// Whether `sql` starts with a stored-program definition: `CREATE [OR REPLACE] [DEFINER = …]
/// [AGGREGATE] PROCEDURE|FUNCTION|TRIGGER|EVENT|PACKAGE`, or `BEGIN NOT ATOMIC`.
pub fn is_program(sql: &[u8], mode: &super::lex::Mode) -> bool {
    let toks = super::lex::significant(sql, mode);
    let is = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.is_word(sql, w));
    if is(0, "BEGIN") && is(1, "NOT") {
        return true;
    }
    if !is(0, "CREATE") {
        return false;
    }
    toks.iter().take(16).skip(1).any(|t| {
        ["PROCEDURE", "FUNCTION", "TRIGGER", "EVENT", "PACKAGE"]
            .iter()
            .any(|w| t.is_word(sql, w))
    })
}

#[cfg(test)]
mod tests {
    use super::split_statements;

    fn pieces(sql: &str) -> Vec<&str> {
        split_statements(sql)
            .into_iter()
            .map(|(s, e)| &sql[s..e])
            .collect()
    }

    #[test]
    fn statements_split_outside_quotes_and_comments() {
        assert_eq!(pieces("SELECT 1"), vec!["SELECT 1"]);
        assert_eq!(pieces("SELECT 1;"), vec!["SELECT 1"]);
        assert_eq!(
            pieces("SELECT 1; SELECT 2 ;"),
            vec!["SELECT 1", " SELECT 2 "]
        );
        assert_eq!(
            pieces("SELECT ';', \";\", `a;b` -- x;y\n; /* ; */ SELECT 'it\\'s;'; # z;\n"),
            vec![
                "SELECT ';', \";\", `a;b` -- x;y\n",
                " /* ; */ SELECT 'it\\'s;'"
            ]
        );
        assert_eq!(pieces("/* only */"), vec!["/* only */"]);
        assert_eq!(
            pieces("SELECT 'a;b' AS x; /* ; */ SELECT `v` FROM t WHERE id = 2 -- ;\n"),
            vec![
                "SELECT 'a;b' AS x",
                " /* ; */ SELECT `v` FROM t WHERE id = 2 -- ;\n"
            ]
        );
        assert_eq!(pieces("SELECT 1; -- trailing"), vec!["SELECT 1"]);
        let program = "CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END";
        assert_eq!(pieces(program), vec![program]);
    }
}
