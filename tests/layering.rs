//! Layering rules for the Tessera workspace, checked by reading the sources.
//!
//! Dependencies must point one way. A module that is part of an import cycle cannot be read,
//! tested or replaced on its own: to understand `a` you must understand `b`, which needs `a`
//! again. The same holds for crates. So this test enforces:
//!
//! 1. No import cycles between the modules of any crate of the workspace. A module is a
//!    source file (`src/a.rs` or `src/a/mod.rs` is `a`, `src/a/b.rs` is `a::b`); there is an
//!    edge from module `m` to module `n` when code in `m` names `n` by a path (`crate::n::…`,
//!    `super::…`, `self::…`, or a child module declared with `mod n;`). `mod` declarations and
//!    re-exports (`pub use …;`) are not edges: they are how a parent exposes its children.
//!    Test code (`#[cfg(test)]` items, `tests` modules) is ignored.
//! 2. The router does not depend on the rebalancer.
//! 3. The rebalancer's dependency on the router is reported (printed) but not enforced.
//!
//! The test uses only the standard library: comments are stripped and string literals
//! blanked by a small state machine, the rest is split into tokens, and paths are read from
//! the tokens. It is a heuristic, not a Rust parser (it does not follow `#[path]` attributes,
//! glob imports of sibling names or macros), so every edge it reports comes with the file, line
//! and path that made it: a wrong one is easy to check.
//!
//! 4. The router's top-level modules form the layers `docs/architecture.md` draws: each
//!    imports only modules of layers below its own ([`ROUTER_LAYERS`]).
//!
//! It finds the workspace through `CARGO_MANIFEST_DIR`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[test]
fn no_import_cycles_between_modules() {
    let root = workspace_root();
    let mut report = String::new();
    let mut cycle_count = 0;
    for krate in workspace_crates(&root) {
        let graph = module_graph(&krate);
        let cycles = cycles(&graph);
        println!(
            "{}: {} modules, {} edges, {} cycle(s)",
            krate.name,
            graph.modules.len(),
            graph.edges.len(),
            cycles.len()
        );
        if !cycles.is_empty() {
            cycle_count += cycles.len();
            report.push_str(&describe_cycles(&krate, &graph, &cycles, &root));
        }
    }
    assert!(
        cycle_count == 0,
        "{cycle_count} import cycle(s) between modules; each must be cut so that \
         dependencies point one way (move the shared piece down into its own module, or pass \
         it in as a parameter):\n{report}"
    );
}

/// The router's layers, bottom first, as `docs/architecture.md` draws them: a top-level module
/// may import only modules of lower layers. A new top-level module gets a place here (and in
/// the picture).
const ROUTER_LAYERS: &[&[&str]] = &[
    &["wire", "error", "vindex", "metrics"],
    &["sql", "config"],
    &["topology"],
    &["planner"],
    &["backend"],
    &["session"],
    &["engine"],
    &["shadow", "overview"],
    &["admin"],
    &["server"],
];

#[test]
fn router_layers_point_down() {
    let root = workspace_root();
    let krate = workspace_crates(&root)
        .into_iter()
        .find(|c| c.name == "tessera-router")
        .expect("the tessera-router crate");
    let layer_of = |m: &str| ROUTER_LAYERS.iter().position(|l| l.contains(&m));
    let graph = module_graph(&krate);
    let mut bad = Vec::new();
    for m in &graph.modules {
        if let Some(top) = m.first() {
            if layer_of(top).is_none() {
                bad.push(format!(
                    "router module `{top}` has no layer in ROUTER_LAYERS (tests/layering.rs)"
                ));
            }
        }
    }
    for ((from, to), ex) in &graph.edges {
        let (Some(f), Some(t)) = (from.first(), to.first()) else {
            continue;
        };
        if f == t {
            continue;
        }
        if let (Some(lf), Some(lt)) = (layer_of(f), layer_of(t)) {
            if lt >= lf {
                bad.push(format!(
                    "{} imports {} (layer {lt} is not below layer {lf}): {}:{}: {}",
                    display(from),
                    display(to),
                    relative(&ex.file, &root),
                    ex.line,
                    ex.path
                ));
            }
        }
    }
    bad.sort();
    bad.dedup();
    assert!(
        bad.is_empty(),
        "the router's layers must only import downwards:\n{}",
        bad.join("\n")
    );
}

#[test]
fn router_does_not_depend_on_the_rebalancer() {
    let root = workspace_root();
    let findings = crate_dependency_findings(
        &root.join("router"),
        &["tessera-rebalancer", "tessera_rebalancer"],
        "rebalancer",
        &root,
    );
    assert!(
        findings.is_empty(),
        "the router must not depend on the rebalancer (the rebalancer drives routers, not the \
         other way round; code both need belongs in a crate below both):\n{}",
        findings.join("\n")
    );
}

/// Report only: the rebalancer may be allowed to use the router, so a dependency is printed
/// as a warning and does not fail the test. (When this test was written, rebalancer/Cargo.toml
/// did not depend on the router at all; to forbid it, turn the `println!` into an `assert!`.)
#[test]
fn rebalancer_does_not_depend_on_the_router() {
    let root = workspace_root();
    let findings = crate_dependency_findings(
        &root.join("rebalancer"),
        &["tessera-router", "tessera_router"],
        "router",
        &root,
    );
    if findings.is_empty() {
        println!("rebalancer does not depend on the router");
    } else {
        println!(
            "warning: the rebalancer depends on the router (reported, not enforced):\n{}",
            findings.join("\n")
        );
    }
}

#[test]
fn self_test_comment_stripper() {
    let src = "let url = \"http://x/*y*/\"; // trailing crate::a\n\
               /* block /* nested */ crate::b */ let q = '\"'; let c = '\\'';\n\
               fn f<'a>(x: &'a str) -> &'a str { x } /// doc crate::c\n\
               let raw = r#\"crate::d \" // still raw\"#; let e = crate::e::E;\n\
               let u = '\\u{1F600}'; let b = b'/'; let s = \"a\\\"b // c\"; crate::f::F;\n";
    let code = code_only(src);
    assert_eq!(code.lines().count(), 5, "line breaks are kept: {code:?}");
    for hidden in [
        "crate::a", "crate::b", "crate::c", "crate::d", "http", "nested",
    ] {
        assert!(
            !code.contains(hidden),
            "{hidden:?} should be gone: {code:?}"
        );
    }
    assert!(code.contains("let url = \""), "{code:?}");
    assert!(
        code.contains("fn f<'a>(x: &'a str) -> &'a str { x }"),
        "{code:?}"
    );
    assert!(code.contains("let e = crate::e::E;"), "{code:?}");
    assert!(code.contains("let c = '  ';"), "{code:?}");
    assert!(
        code.contains("crate::f::F;"),
        "escapes end where they should: {code:?}"
    );
}

#[test]
fn self_test_path_reader() {
    let src = "use crate::{a::b, c::{d, e as f}, g::*};\n\
               use super::{x, y::{self, Z}};\n\
               pub use crate::reexported::Thing;\n\
               pub(crate) use self::also::{\n    Reexported,\n};\n\
               fn run() { crate::engine::release_conn(1); merge::MergeSpec::new(); v.len(); }\n\
               Vec::<u8>::new(); x.iter::<u8>();\n\
               #[cfg(test)]\nmod tests { use crate::only_in_tests; }\n\
               #[cfg(test)]\nmod sim;\nmod merge;\n";
    let file = parse_file(src);
    let paths: Vec<(String, usize)> = file
        .paths
        .iter()
        .filter(|p| p.segments.len() > 1)
        .map(|p| (p.segments.join("::"), p.line))
        .collect();
    let expected = [
        ("crate::a::b", 1),
        ("crate::c::d", 1),
        ("crate::c::e", 1),
        ("crate::g", 1),
        ("super::x", 2),
        ("super::y::self", 2),
        ("super::y::Z", 2),
        ("crate::engine::release_conn", 7),
        ("merge::MergeSpec::new", 7),
    ];
    let expected: Vec<(String, usize)> =
        expected.iter().map(|(p, l)| (p.to_string(), *l)).collect();
    assert_eq!(paths, expected);
    assert_eq!(file.children, BTreeSet::from(["merge".to_string()]));
    assert_eq!(file.test_children, BTreeSet::from(["sim".to_string()]));

    let modules: BTreeSet<Vec<String>> = [vec![], mp("a"), mp("a::b"), mp("a::m")]
        .into_iter()
        .collect();
    let children = BTreeSet::from(["m".to_string()]);
    let here = mp("a");
    let resolve = |p: &str| resolve(&mp(p), &here, &children, &modules);
    assert_eq!(resolve("crate::a::b::Thing"), Some(mp("a::b")));
    assert_eq!(resolve("crate::a::Other"), Some(mp("a")));
    assert_eq!(resolve("crate::FastMap"), Some(vec![]));
    assert_eq!(resolve("super::a::m"), Some(mp("a::m")));
    assert_eq!(resolve("self::b"), Some(mp("a::b")));
    assert_eq!(resolve("m::Spec"), Some(mp("a::m")));
    assert_eq!(
        resolve("b::Spec"),
        None,
        "b is not declared with `mod b;` here"
    );
    assert_eq!(resolve("std::io"), None);
    assert_eq!(resolve("super::super::x"), None, "above the crate root");
}

/// A module path from `a::b` notation (empty segments are dropped, so "" is the root).
fn mp(path: &str) -> Vec<String> {
    path.split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The workspace and its manifests
// ---------------------------------------------------------------------------------------------

struct Crate {
    /// The package name from its Cargo.toml.
    name: String,
    /// The directory holding its Cargo.toml and src/.
    dir: PathBuf,
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The root package (if the root manifest has one) and every `[workspace] members` entry.
fn workspace_crates(root: &Path) -> Vec<Crate> {
    let manifest = read(&root.join("Cargo.toml"));
    let mut dirs = Vec::new();
    if package_name(&manifest).is_some() && root.join("src").is_dir() {
        dirs.push(root.to_path_buf());
    }
    for member in workspace_members(&manifest) {
        dirs.extend(expand_member(root, &member));
    }
    dirs.into_iter()
        .map(|dir| {
            let name = package_name(&read(&dir.join("Cargo.toml")))
                .unwrap_or_else(|| dir.display().to_string());
            Crate { name, dir }
        })
        .collect()
}

/// A member is a directory, or `dir/*` for every directory under `dir` with a Cargo.toml.
fn expand_member(root: &Path, member: &str) -> Vec<PathBuf> {
    let Some(parent) = member.strip_suffix("/*") else {
        return vec![root.join(member)];
    };
    let parent = root.join(parent);
    let entries = fs::read_dir(&parent)
        .unwrap_or_else(|e| panic!("reading directory {}: {e}", parent.display()));
    let mut dirs: Vec<PathBuf> = entries
        .map(|e| e.expect("reading a directory entry").path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// The manifest split into `[section]`s: (header, lines with their 1-based numbers).
/// Lines before the first header go in a section with an empty header. `#` comments are cut.
fn toml_sections(text: &str) -> Vec<(String, Vec<(usize, String)>)> {
    let mut sections = vec![(String::new(), Vec::new())];
    for (index, line) in text.lines().enumerate() {
        let line = toml_strip_comment(line).trim().to_string();
        if line.starts_with('[') && !line.contains('=') {
            let header = line
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string();
            sections.push((header, Vec::new()));
        } else if !line.is_empty() {
            let last = sections.len() - 1;
            sections[last].1.push((index + 1, line));
        }
    }
    sections
}

/// The line without a `#` comment (a `#` inside a "string" is kept).
fn toml_strip_comment(line: &str) -> &str {
    let mut in_string = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_string = !in_string,
            '#' if !in_string => return &line[..i],
            _ => {}
        }
    }
    line
}

/// The `name` of the `[package]` section.
fn package_name(manifest: &str) -> Option<String> {
    let sections = toml_sections(manifest);
    let (_, lines) = sections.iter().find(|(header, _)| header == "package")?;
    lines.iter().find_map(|(_, line)| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "name").then(|| value.trim().trim_matches('"').to_string())
    })
}

/// The strings of `members = [...]` in the `[workspace]` section (the list may span lines).
fn workspace_members(manifest: &str) -> Vec<String> {
    let sections = toml_sections(manifest);
    let Some((_, lines)) = sections.iter().find(|(header, _)| header == "workspace") else {
        return Vec::new();
    };
    let is_members = |line: &str| line.split('=').next().map(str::trim) == Some("members");
    let Some(start) = lines.iter().position(|(_, line)| is_members(line)) else {
        return Vec::new();
    };
    let mut list = String::new();
    for (_, line) in &lines[start..] {
        list.push_str(line);
        if line.contains(']') {
            break;
        }
    }
    let open = list.find('[').map_or(list.len(), |i| i + 1);
    let close = list.find(']').unwrap_or(list.len()).max(open);
    list[open..close]
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

/// Where a crate depends on another: dependency-section lines of its Cargo.toml that name one
/// of `names` (as the key, as `package = "…"`, or as `path = "…/other_dir"`), and lines of code
/// under its src/ that mention one of `names` (comments do not count).
fn crate_dependency_findings(
    crate_dir: &Path,
    names: &[&str],
    other_dir: &str,
    root: &Path,
) -> Vec<String> {
    let manifest_path = crate_dir.join("Cargo.toml");
    let manifest = read(&manifest_path);
    let mut findings = Vec::new();
    for (header, lines) in toml_sections(&manifest) {
        if !is_dependency_section(&header) {
            continue;
        }
        let header_names_it = names.iter().any(|n| mentions(&header, n));
        for (line_no, line) in lines {
            let names_it = names.iter().any(|n| mentions(&line, n));
            if header_names_it || names_it || path_points_to(&line, other_dir) {
                findings.push(format!(
                    "{}:{line_no}: [{header}] {line}",
                    relative(&manifest_path, root)
                ));
            }
        }
    }
    for file in rust_files(&crate_dir.join("src")) {
        let code = code_only(&read(&file));
        for (index, line) in code.lines().enumerate() {
            if names.iter().any(|n| mentions(line, n)) {
                findings.push(format!(
                    "{}:{}: {}",
                    relative(&file, root),
                    index + 1,
                    line.trim()
                ));
            }
        }
    }
    findings
}

/// `[dependencies]`, `[dev-dependencies]`, `[build-dependencies]`, `[dependencies.x]`,
/// `[target.'cfg(…)'.dependencies]` and the like.
fn is_dependency_section(header: &str) -> bool {
    header.split('.').any(|part| {
        matches!(
            part.trim(),
            "dependencies" | "dev-dependencies" | "build-dependencies"
        )
    })
}

/// Whether `text` contains `word` with no identifier character (or `-`) on either side.
fn mentions(text: &str, word: &str) -> bool {
    let is_name_char = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
    })
}

/// Whether a manifest line has `path = "…"` whose last component is `dir`.
fn path_points_to(line: &str, dir: &str) -> bool {
    let Some(start) = line.find("path") else {
        return false;
    };
    let rest = &line[start + "path".len()..];
    let Some(value) = rest.trim_start().strip_prefix('=') else {
        return false;
    };
    let value = value.trim_start().trim_start_matches('"');
    let value = value.split('"').next().unwrap_or("");
    Path::new(value).file_name().is_some_and(|name| name == dir)
}

fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading directory {}: {e}", dir.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("reading an entry of {}: {e}", dir.display()))
                .path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

// ---------------------------------------------------------------------------------------------
// Source text: comments, strings, tokens
// ---------------------------------------------------------------------------------------------

/// The code with comments removed and the contents of string and char literals blanked
/// (replaced by spaces), so that neither can be mistaken for code. Line breaks are kept, so
/// line numbers stay those of the file.
fn code_only(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i = skip_block_comment(&chars, i, &mut out);
        } else if let Some((prefix, hashes)) = raw_string_start(&chars, i) {
            i = copy_raw_string(&chars, i, prefix, hashes, &mut out);
        } else if c == '"' {
            i = copy_string(&chars, i, &mut out);
        } else if let Some(end) = char_literal_end(&chars, i) {
            out.push('\'');
            blank(&chars[i + 1..end], &mut out);
            out.push('\'');
            i = end + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Pushes a space for each char, or a line break for a line break.
fn blank(chars: &[char], out: &mut String) {
    out.extend(chars.iter().map(|&c| if c == '\n' { '\n' } else { ' ' }));
}

/// Skips a (possibly nested) `/* */` comment starting at `i`; returns the index after it.
fn skip_block_comment(chars: &[char], mut i: usize, out: &mut String) -> usize {
    let mut depth = 0;
    while i < chars.len() {
        match (chars[i], chars.get(i + 1).copied()) {
            ('/', Some('*')) => {
                depth += 1;
                i += 2;
            }
            ('*', Some('/')) => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    break;
                }
            }
            (c, _) => {
                blank(&[c], out);
                i += 1;
            }
        }
    }
    out.push(' ');
    i
}

/// At `r"`, `r#"`, `br##"`…, not inside an identifier: (length of the prefix up to and
/// including the opening quote, number of `#`).
fn raw_string_start(chars: &[char], i: usize) -> Option<(usize, usize)> {
    let after_prefix = match (chars[i], chars.get(i + 1)) {
        ('r', _) => i + 1,
        ('b', Some('r')) => i + 2,
        _ => return None,
    };
    if i > 0 && is_ident_char(chars[i - 1]) {
        return None;
    }
    let hashes = chars[after_prefix..]
        .iter()
        .take_while(|&&c| c == '#')
        .count();
    let quote = after_prefix + hashes;
    (chars.get(quote) == Some(&'"')).then_some((quote + 1 - i, hashes))
}

fn copy_raw_string(
    chars: &[char],
    start: usize,
    prefix: usize,
    hashes: usize,
    out: &mut String,
) -> usize {
    out.extend(&chars[start..start + prefix]);
    let mut i = start + prefix;
    while i < chars.len() {
        let closes = chars[i] == '"'
            && chars.len() >= i + 1 + hashes
            && chars[i + 1..i + 1 + hashes].iter().all(|&c| c == '#');
        if closes {
            out.extend(&chars[i..i + 1 + hashes]);
            return i + 1 + hashes;
        }
        blank(&chars[i..=i], out);
        i += 1;
    }
    i
}

/// Copies a `"…"` string starting at `i` with its contents blanked; returns the index after.
fn copy_string(chars: &[char], start: usize, out: &mut String) -> usize {
    out.push('"');
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let end = (i + 2).min(chars.len());
                blank(&chars[i..end], out);
                i = end;
            }
            '"' => {
                out.push('"');
                return i + 1;
            }
            c => {
                blank(&[c], out);
                i += 1;
            }
        }
    }
    i
}

/// At a `'` that opens a char literal (`'x'`, `'\n'`, `'\u{1F600}'`), the index of the
/// closing `'`. A lifetime (`'a`, `'static`) has no closing quote right after one char.
fn char_literal_end(chars: &[char], i: usize) -> Option<usize> {
    if chars[i] != '\'' {
        return None;
    }
    match chars.get(i + 1) {
        Some('\\') => (i + 3..=i + 12)
            .take_while(|&j| j < chars.len())
            .find(|&j| chars[j] == '\''),
        Some('\'') | None => None,
        Some(_) => (chars.get(i + 2) == Some(&'\'')).then_some(i + 2),
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// An identifier or keyword (also a number, which never matches a module name).
    Ident(String),
    /// `::`
    PathSep,
    /// Any other character.
    Punct(char),
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

impl Token {
    fn is_ident(&self, word: &str) -> bool {
        matches!(&self.tok, Tok::Ident(w) if w == word)
    }

    fn is_punct(&self, c: char) -> bool {
        self.tok == Tok::Punct(c)
    }
}

/// Splits code (as returned by [`code_only`]) into tokens with their 1-based line numbers.
fn tokenize(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if is_ident_char(c) {
            let start = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            tokens.push(Token {
                tok: Tok::Ident(word),
                line,
            });
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push(Token {
                tok: Tok::PathSep,
                line,
            });
            i += 2;
        } else {
            tokens.push(Token {
                tok: Tok::Punct(c),
                line,
            });
            i += 1;
        }
    }
    tokens
}

/// Splits tokens into (code, test code): an item after a `#[cfg(test)]` attribute (a
/// `mod tests { … }`, a `mod sim;`, a test helper function, a `use`) is test code.
fn split_off_test_items(tokens: &[Token]) -> (Vec<Token>, Vec<Token>) {
    let mut code = Vec::new();
    let mut test = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if is_cfg_test_attribute(&tokens[i..]) {
            let end = item_end(tokens, i + CFG_TEST.len());
            test.extend_from_slice(&tokens[i..end]);
            i = end;
        } else {
            code.push(tokens[i].clone());
            i += 1;
        }
    }
    (code, test)
}

/// The tokens of `#[cfg(test)]`.
const CFG_TEST: [&str; 7] = ["#", "[", "cfg", "(", "test", ")", "]"];

fn is_cfg_test_attribute(tokens: &[Token]) -> bool {
    tokens.len() >= CFG_TEST.len()
        && CFG_TEST.iter().zip(tokens).all(|(p, t)| match &t.tok {
            Tok::Ident(w) => w == p,
            Tok::Punct(c) => p.len() == 1 && p.starts_with(*c),
            Tok::PathSep => false,
        })
}

/// The index after the item starting at `i` (after any further attributes): after its `;`,
/// or after the `}` closing its first `{ … }` block, whichever comes first.
fn item_end(tokens: &[Token], mut i: usize) -> usize {
    while i + 1 < tokens.len() && tokens[i].is_punct('#') && tokens[i + 1].is_punct('[') {
        i = matching_close(tokens, i + 1, '[', ']');
    }
    let mut depth = 0; // of ( ) and [ ], where a `;` or `{` does not end the item
    while i < tokens.len() {
        match tokens[i].tok {
            Tok::Punct('(') | Tok::Punct('[') => depth += 1,
            Tok::Punct(')') | Tok::Punct(']') => depth -= 1,
            Tok::Punct(';') if depth == 0 => return i + 1,
            Tok::Punct('{') if depth == 0 => return matching_close(tokens, i, '{', '}'),
            _ => {}
        }
        i += 1;
    }
    i
}

/// The index after the `close` matching the `open` at `i`.
fn matching_close(tokens: &[Token], mut i: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    while i < tokens.len() {
        if tokens[i].is_punct(open) {
            depth += 1;
        } else if tokens[i].is_punct(close) {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    i
}

// ---------------------------------------------------------------------------------------------
// Paths in the code
// ---------------------------------------------------------------------------------------------

/// A path written in the code, braces expanded: `use a::{b, c::d}` gives `a::b` and `a::c::d`.
#[derive(Clone, Debug, PartialEq)]
struct PathRef {
    segments: Vec<String>,
    /// The line of its last segment.
    line: usize,
}

/// What one source file says about modules.
struct ParsedFile {
    /// Every path in the non-test code, except in re-exports (`pub use …;`).
    paths: Vec<PathRef>,
    /// Child modules declared with `mod x;` (any visibility), outside test code.
    children: BTreeSet<String>,
    /// Child modules declared in test code (`#[cfg(test)] mod x;`).
    test_children: BTreeSet<String>,
}

fn parse_file(src: &str) -> ParsedFile {
    let tokens = tokenize(&code_only(src));
    let (code, test) = split_off_test_items(&tokens);
    ParsedFile {
        paths: paths(&code),
        children: declared_modules(&code),
        test_children: declared_modules(&test),
    }
}

/// The names in `mod x;` declarations (not inline `mod x { … }` blocks).
fn declared_modules(tokens: &[Token]) -> BTreeSet<String> {
    tokens
        .windows(3)
        .filter(|w| w[0].is_ident("mod") && w[2].is_punct(';'))
        .filter_map(|w| match &w[1].tok {
            Tok::Ident(name) => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// Every path in the code (including one-segment ones), skipping re-export statements.
fn paths(tokens: &[Token]) -> Vec<PathRef> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if let Some(end) = reexport_end(tokens, i) {
            i = end;
            continue;
        }
        let follows_path_or_field =
            i > 0 && matches!(tokens[i - 1].tok, Tok::PathSep | Tok::Punct('.'));
        if matches!(tokens[i].tok, Tok::Ident(_)) && !follows_path_or_field {
            i = use_tree(tokens, i, &[], &mut out);
        } else {
            i += 1;
        }
    }
    out
}

/// At `pub use`, `pub(crate) use`, `pub(super) use`, `pub(in …) use`: the index after the `;`.
fn reexport_end(tokens: &[Token], i: usize) -> Option<usize> {
    if !tokens[i].is_ident("pub") {
        return None;
    }
    let mut j = i + 1;
    if tokens.get(j).is_some_and(|t| t.is_punct('(')) {
        j = matching_close(tokens, j, '(', ')');
    }
    if !tokens.get(j).is_some_and(|t| t.is_ident("use")) {
        return None;
    }
    let semicolon = (j..tokens.len()).find(|&k| tokens[k].is_punct(';'));
    Some(semicolon.map_or(tokens.len(), |k| k + 1))
}

/// Reads a path (or a `{ … }` group of them, or `*`) starting at `i` after `prefix`, pushes
/// the complete paths to `out` and returns the index after it. A path ends at anything but
/// `::` followed by an identifier, `{` or `*` (so `Vec::<u8>` is just `Vec`).
fn use_tree(tokens: &[Token], mut i: usize, prefix: &[String], out: &mut Vec<PathRef>) -> usize {
    let mut segments = prefix.to_vec();
    let mut line = tokens.get(i).map_or(0, |t| t.line);
    loop {
        match tokens.get(i).map(|t| &t.tok) {
            Some(Tok::Ident(word)) => {
                segments.push(word.clone());
                line = tokens[i].line;
                i += 1;
            }
            Some(Tok::Punct('{')) => return use_group(tokens, i, &segments, out),
            Some(Tok::Punct('*')) => {
                i += 1;
                break;
            }
            _ => break,
        }
        let continues = matches!(tokens.get(i).map(|t| &t.tok), Some(Tok::PathSep))
            && matches!(
                tokens.get(i + 1).map(|t| &t.tok),
                Some(Tok::Ident(_) | Tok::Punct('{') | Tok::Punct('*'))
            );
        if !continues {
            break;
        }
        i += 1;
    }
    if !segments.is_empty() {
        out.push(PathRef { segments, line });
    }
    i
}

/// Reads `{ tree, tree as alias, … }` at `i`, each tree after `prefix`; returns the index
/// after the `}`.
fn use_group(tokens: &[Token], open: usize, prefix: &[String], out: &mut Vec<PathRef>) -> usize {
    let mut i = open + 1;
    while i < tokens.len() && !tokens[i].is_punct('}') {
        i = use_tree(tokens, i, prefix, out);
        // Skip `as alias` (or anything unexpected) up to the next `,` or the closing `}`.
        while i < tokens.len() && !tokens[i].is_punct(',') && !tokens[i].is_punct('}') {
            if tokens[i].is_punct('{') {
                i = matching_close(tokens, i, '{', '}');
            } else {
                i += 1;
            }
        }
        if i < tokens.len() && tokens[i].is_punct(',') {
            i += 1;
        }
    }
    i + 1
}

// ---------------------------------------------------------------------------------------------
// The module graph of one crate
// ---------------------------------------------------------------------------------------------

/// A module path: `[]` is the crate root, `["planner", "merge"]` is `planner::merge`.
type ModPath = Vec<String>;

fn display(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_string()
    } else {
        module.join("::")
    }
}

/// Where an edge comes from: the first path found that creates it.
struct Example {
    file: PathBuf,
    line: usize,
    path: String,
}

struct Graph {
    modules: BTreeSet<ModPath>,
    edges: BTreeMap<(ModPath, ModPath), Example>,
}

/// The modules of a crate (one per source file under src/, test-only ones left out) and the
/// edges between them.
fn module_graph(krate: &Crate) -> Graph {
    let files = module_files(&krate.dir.join("src"));
    let parsed: BTreeMap<ModPath, ParsedFile> = files
        .iter()
        .map(|(module, file)| (module.clone(), parse_file(&read(file))))
        .collect();
    let modules: BTreeSet<ModPath> = parsed
        .keys()
        .filter(|module| !is_test_module(module, &parsed))
        .cloned()
        .collect();
    let mut edges = BTreeMap::new();
    for module in &modules {
        let file = &parsed[module];
        for path in &file.paths {
            let Some(target) = resolve(&path.segments, module, &file.children, &modules) else {
                continue;
            };
            if &target != module {
                edges
                    .entry((module.clone(), target))
                    .or_insert_with(|| Example {
                        file: files[module].clone(),
                        line: path.line,
                        path: path.segments.join("::"),
                    });
            }
        }
    }
    Graph { modules, edges }
}

/// Whether a module, or one of its ancestors, is test code: named `tests`, or declared by its
/// parent after `#[cfg(test)]`.
fn is_test_module(module: &[String], parsed: &BTreeMap<ModPath, ParsedFile>) -> bool {
    (1..=module.len()).any(|len| {
        let (parent, name) = (&module[..len - 1], &module[len - 1]);
        name == "tests"
            || parsed
                .get(parent)
                .is_some_and(|p| p.test_children.contains(name))
    })
}

/// The module of each source file under `src`: `lib.rs` (else `main.rs`) is the root,
/// `a.rs` and `a/mod.rs` are `a`, `a/b.rs` is `a::b`. `src/bin/` is left out, and so is
/// `main.rs` when there is a `lib.rs` (it is then a separate binary crate using the library).
fn module_files(src: &Path) -> BTreeMap<ModPath, PathBuf> {
    let has_lib = src.join("lib.rs").is_file();
    let mut modules = BTreeMap::new();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).expect("a file under src/");
        let mut parts: Vec<String> = relative
            .iter()
            .map(|part| part.to_string_lossy().into_owned())
            .collect();
        if (parts[0] == "bin" && parts.len() > 1) || (has_lib && parts == ["main.rs"]) {
            continue;
        }
        let last = parts.pop().expect("a file name");
        let stem = last.trim_end_matches(".rs");
        let is_root = parts.is_empty() && (stem == "lib" || stem == "main");
        if !is_root && stem != "mod" {
            parts.push(stem.to_string());
        }
        modules.insert(parts, file);
    }
    modules
}

/// The module of the crate that a path written in module `here` names, if any: the longest
/// prefix of the path that is a module. Paths to other crates (`std::…`, `tessera_topo::…`)
/// and single names (`Foo`, `x`) name none.
fn resolve(
    path: &[String],
    here: &[String],
    children: &BTreeSet<String>,
    modules: &BTreeSet<ModPath>,
) -> Option<ModPath> {
    // `use a::{self, B}` gives `a::self`, which is `a`.
    let segments: Vec<&str> = path
        .iter()
        .enumerate()
        .filter(|&(i, s)| i == 0 || s != "self")
        .map(|(_, s)| s.as_str())
        .collect();
    let (mut base, rest): (ModPath, &[&str]) = match segments[0] {
        "crate" => (Vec::new(), &segments[1..]),
        "self" => (here.to_vec(), &segments[1..]),
        "super" => {
            let mut base = here.to_vec();
            let supers = segments.iter().take_while(|&&s| s == "super").count();
            for _ in 0..supers {
                base.pop()?;
            }
            (base, &segments[supers..])
        }
        first if segments.len() > 1 && children.contains(first) => (here.to_vec(), &segments[..]),
        _ => return None,
    };
    if !modules.contains(&base) {
        return None;
    }
    for segment in rest {
        base.push(segment.to_string());
        if !modules.contains(&base) {
            base.pop();
            break;
        }
    }
    Some(base)
}

/// The strongly connected components with more than one module, each sorted (Tarjan).
fn cycles(graph: &Graph) -> Vec<Vec<ModPath>> {
    let index_of: BTreeMap<&ModPath, usize> = graph
        .modules
        .iter()
        .enumerate()
        .map(|(i, m)| (m, i))
        .collect();
    let names: Vec<&ModPath> = graph.modules.iter().collect();
    let mut successors = vec![Vec::new(); names.len()];
    for (from, to) in graph.edges.keys() {
        successors[index_of[from]].push(index_of[to]);
    }
    let mut tarjan = Tarjan {
        successors: &successors,
        index: vec![None; names.len()],
        low: vec![0; names.len()],
        on_stack: vec![false; names.len()],
        stack: Vec::new(),
        next: 0,
        components: Vec::new(),
    };
    for v in 0..names.len() {
        if tarjan.index[v].is_none() {
            tarjan.visit(v);
        }
    }
    let mut cycles: Vec<Vec<ModPath>> = tarjan
        .components
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let mut modules: Vec<ModPath> = c.into_iter().map(|v| names[v].clone()).collect();
            modules.sort();
            modules
        })
        .collect();
    cycles.sort();
    cycles
}

struct Tarjan<'g> {
    successors: &'g [Vec<usize>],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    next: usize,
    components: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn visit(&mut self, v: usize) {
        self.index[v] = Some(self.next);
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for &w in &self.successors[v] {
            match self.index[w] {
                None => {
                    self.visit(w);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(w_index) if self.on_stack[w] => self.low[v] = self.low[v].min(w_index),
                Some(_) => {}
            }
        }
        if Some(self.low[v]) == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}

/// The cycles of a crate, each with every edge inside it and where that edge comes from.
fn describe_cycles(krate: &Crate, graph: &Graph, cycles: &[Vec<ModPath>], root: &Path) -> String {
    let mut text = format!(
        "\ncrate {} ({}): {} cycle(s)\n",
        krate.name,
        relative(&krate.dir.join("src"), root),
        cycles.len()
    );
    for (n, cycle) in cycles.iter().enumerate() {
        let names: Vec<String> = cycle.iter().map(|m| display(m)).collect();
        text.push_str(&format!("  cycle {}: {}\n", n + 1, names.join(", ")));
        text.push_str("    loops in it (the shortest through each edge):\n");
        for lp in shortest_loops(graph, cycle) {
            let names: Vec<String> = lp.iter().map(|m| display(m)).collect();
            text.push_str(&format!("      {} -> {}\n", names.join(" -> "), names[0]));
        }
        text.push_str("    edges in it, each with the first place that makes it:\n");
        for ((from, to), example) in &graph.edges {
            if cycle.contains(from) && cycle.contains(to) {
                text.push_str(&format!(
                    "      {} -> {}    {}:{}: {}\n",
                    display(from),
                    display(to),
                    relative(&example.file, root),
                    example.line,
                    example.path
                ));
            }
        }
    }
    text
}

/// For each edge `a -> b` inside a cycle, the shortest loop through it (`a`, `b`, …, back to
/// `a`), each loop once, shortest first. These are the chains a developer reads to decide
/// where to cut.
fn shortest_loops(graph: &Graph, cycle: &[ModPath]) -> Vec<Vec<ModPath>> {
    let inside = |(from, to): &(ModPath, ModPath)| cycle.contains(from) && cycle.contains(to);
    let edges: Vec<&(ModPath, ModPath)> = graph.edges.keys().filter(|e| inside(e)).collect();
    let mut loops = BTreeSet::new();
    for (from, to) in &edges {
        let Some(mut path) = shortest_path(&edges, to, from) else {
            continue;
        };
        path.insert(0, from.clone());
        path.pop(); // `from` again
        let start = (0..path.len()).min_by_key(|&i| &path[i]).unwrap_or(0);
        path.rotate_left(start);
        loops.insert((path.len(), path));
    }
    loops.into_iter().map(|(_, path)| path).collect()
}

/// The shortest path from `start` to `goal` over `edges` (breadth first), both ends included.
fn shortest_path(
    edges: &[&(ModPath, ModPath)],
    start: &ModPath,
    goal: &ModPath,
) -> Option<Vec<ModPath>> {
    let mut came_from: BTreeMap<&ModPath, &ModPath> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        if node == goal {
            let mut path = vec![node.clone()];
            let mut at = node;
            while at != start {
                at = came_from[at];
                path.push(at.clone());
            }
            path.reverse();
            return Some(path);
        }
        for (from, to) in edges {
            if from == node && to != start && !came_from.contains_key(to) {
                came_from.insert(to, node);
                queue.push_back(to);
            }
        }
    }
    None
}
