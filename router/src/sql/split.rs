//! Splitting a multi-statement batch (`CLIENT_MULTI_STATEMENTS`) into its statements, at
//! the `;` that stand outside quoted strings, quoted identifiers and comments.

/// Returns the byte ranges of the statements of `sql`, each without its `;`, in order; pieces
/// that hold only whitespace and comments after the first statement are left out (a batch
/// ending in `;` has no empty last statement). A batch of one statement is one range.
pub fn split_statements(sql: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    super::rewrite::scan(sql, |m| {
        if let super::rewrite::Mark::Semicolon(at) = m {
            out.push((start, at));
            start = at + 1;
        }
    });
    out.push((start, sql.len()));
    let blank = |&(s, e): &(usize, usize)| super::rewrite::statement_end(&sql[s..e]) == 0;
    let first_kept = out.first().copied();
    let mut kept: Vec<(usize, usize)> = out.into_iter().filter(|r| !blank(r)).collect();
    if kept.is_empty() {
        // A batch of nothing but comments is one (comment-only) statement.
        kept.extend(first_kept);
    }
    kept
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
    }
}
