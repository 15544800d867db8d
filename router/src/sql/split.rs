//! Splitting a multi-statement batch (`CLIENT_MULTI_STATEMENTS`) into its statements, at
//! the `;` that stand outside quoted strings, quoted identifiers and comments.

/// Returns the byte ranges of the statements of `sql`, each without its `;`, in order; pieces
/// that hold only whitespace and comments after the first statement are left out (a batch
/// ending in `;` has no empty last statement). A batch of one statement is one range.
pub fn split_statements(sql: &str) -> Vec<(usize, usize)> {
    split_bytes(sql.as_bytes(), &super::lex::Mode::default())
}

/// [`split_statements`] of bytes lexed as `mode` says. A stored-program definition is one
/// statement to the end of its body, whose `;` do not split it, as MariaDB reads it: the body
/// ends at the first `;` after its compound statements (`BEGIN … END`, `IF … END IF`, `CASE …
/// END [CASE]`, `LOOP`, `WHILE`, `REPEAT`) are all closed.
pub fn split_bytes(sql: &[u8], mode: &super::lex::Mode) -> Vec<(usize, usize)> {
    use super::lex::{Kind, Lexer};
    let toks: Vec<super::lex::Token> = Lexer::new(sql, *mode).collect();
    let mut out = Vec::new();
    let mut start = 0;
    // Per statement: its significant tokens so far, whether it defines a program, the depth
    // of open compound statements.
    let mut words: Vec<usize> = Vec::new();
    let mut program = false;
    let mut depth: usize = 0;
    let mut in_exec = false;
    let is = |i: usize, w: &str| toks[i].is_word(sql, w);
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            Kind::ExecOpen => in_exec = true,
            Kind::ExecClose => in_exec = false,
            Kind::Semicolon if !in_exec => {
                if program && depth > 0 {
                    words.push(i);
                    continue;
                }
                out.push((start, t.start));
                start = t.end;
                words.clear();
                program = false;
                depth = 0;
            }
            _ if t.is_blank() => {}
            _ => {
                let n = words.len();
                words.push(i);
                // A compound statement outside a stored program opens its own block.
                if n == 0
                    && ["IF", "CASE", "LOOP", "WHILE", "REPEAT", "FOR"]
                        .iter()
                        .any(|w| is(i, w))
                {
                    program = true;
                    depth = 1;
                    continue;
                }
                if n < 16 && !program && n >= 1 {
                    let first = words[0];
                    program = is(first, "BEGIN") && n == 1 && is(i, "NOT")
                        || is(first, "CREATE")
                            && ["PROCEDURE", "FUNCTION", "TRIGGER", "EVENT", "PACKAGE"]
                                .iter()
                                .any(|w| is(i, w));
                    if program && is(first, "BEGIN") {
                        depth = 1;
                    }
                    continue;
                }
                if !program || t.kind != Kind::Word {
                    continue;
                }
                let prev = n.checked_sub(1).map(|p| words[p]);
                let after_end = prev.is_some_and(|p| is(p, "END"));
                let statement_start = prev.is_none_or(|p| {
                    toks[p].kind == Kind::Semicolon
                        || toks[p].kind == Kind::Punct && sql[toks[p].start] == b':'
                        || ["BEGIN", "THEN", "ELSE", "DO", "LOOP", "REPEAT", "ATOMIC"]
                            .iter()
                            .any(|w| is(p, w))
                });
                if is(i, "END") {
                    depth = depth.saturating_sub(1);
                } else if after_end {
                    // `END IF`, `END LOOP`, …: closed by the `END`.
                } else if is(i, "BEGIN")
                    || is(i, "CASE")
                    || statement_start
                        && ["IF", "LOOP", "WHILE", "REPEAT", "FOR"]
                            .iter()
                            .any(|w| is(i, w))
                {
                    depth += 1;
                }
            }
        }
    }
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
        assert_eq!(
            pieces("DROP PROCEDURE IF EXISTS p; CREATE PROCEDURE p() BEGIN DO 1; END; SELECT 1;"),
            vec![
                "DROP PROCEDURE IF EXISTS p",
                " CREATE PROCEDURE p() BEGIN DO 1; END",
                " SELECT 1"
            ]
        );
        let nested = "CREATE PROCEDURE q(x INT) BEGIN IF x > 0 THEN SELECT CASE WHEN x > 1 THEN 2 ELSE 1 END; \
                      ELSE WHILE x < 0 DO SET x = x + 1; END WHILE; END IF; lbl: LOOP LEAVE lbl; END LOOP; \
                      SELECT IF(x, 1, 2); DROP TABLE IF EXISTS t; END";
        assert_eq!(
            pieces(&format!("{nested}; SELECT 3")),
            vec![nested, " SELECT 3"]
        );
        let for_loop = "BEGIN NOT ATOMIC FOR i IN 0..2 DO SELECT i; END FOR; END";
        assert_eq!(
            pieces(&format!("{for_loop}; SELECT 4")),
            vec![for_loop, " SELECT 4"]
        );
        assert_eq!(
            pieces("CREATE FUNCTION f() RETURNS INT RETURN 1; SELECT f()"),
            vec!["CREATE FUNCTION f() RETURNS INT RETURN 1", " SELECT f()"]
        );
        assert_eq!(
            pieces("CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET NEW.a = 1; SELECT 2"),
            vec![
                "CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET NEW.a = 1",
                " SELECT 2"
            ]
        );
    }
}
