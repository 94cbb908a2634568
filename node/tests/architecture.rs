//! The shape of the crate, checked from its source: no module imports a module that imports it
//! back, and the library depends on no command-line crate.
//!
//! The module graph is read the way a reviewer would read it: every `crate::…`, `super::…` and
//! `self::…` path in a file (use trees included, comments and strings left out) is resolved through
//! the crate's re-exports to the module that defines what it names. Among the children of each
//! module, an edge `a → b` means something in `a` (or below it) uses something in `b` (or below
//! it); a child using its parent's items, or a parent its children's, is containment, not an edge.
//! Every level must be acyclic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

type ModPath = Vec<String>;

/// Every module of the crate: its path and its source (comments and strings blanked).
fn modules(src: &Path) -> BTreeMap<ModPath, String> {
    let mut out = BTreeMap::new();
    for entry in
        walkdir::WalkDir::new(src).into_iter().flatten().filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
    {
        let rel = entry.path().strip_prefix(src).unwrap();
        let mut parts: Vec<String> =
            rel.iter().map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
        if parts.last().is_some_and(|p| p == "mod" || p == "lib" || p == "main") {
            parts.pop();
        }
        out.insert(parts, strip(&std::fs::read_to_string(entry.path()).unwrap()));
    }
    out
}

/// The source without comments, string and character literals (they may mention paths).
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i + 1 < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'r'
            && i + 1 < b.len()
            && (b[i + 1] == b'"' || b[i + 1] == b'#')
            && (i == 0 || !is_ident(b[i - 1]))
        {
            // Raw string r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while j < b.len() && b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            if j < b.len() && b[j] == b'"' {
                let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                j += 1;
                while j < b.len() && !b[j..].starts_with(&close) {
                    j += 1;
                }
                i = j + close.len();
                out.push_str("\"\"");
            } else {
                out.push('r');
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\''
            && i + 2 < b.len()
            && (b[i + 2] == b'\'' || (b[i + 1] == b'\\' && b[i + 3..].contains(&b'\'')))
        {
            // A character literal (not a lifetime).
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Every path written in `src` that starts with `crate`, `super` or `self`, use trees expanded.
fn paths(src: &str) -> Vec<Vec<String>> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let at_word = i == 0 || !is_ident(b[i - 1]) && b[i - 1] != b':';
        let root = ["crate", "super", "self"].into_iter().find(|r| b[i..].starts_with(r.as_bytes()));
        if let (true, Some(root)) = (at_word, root)
            && b.get(i + root.len()..i + root.len() + 2) == Some(b"::")
        {
            let (trees, end) = parse_tree(b, i);
            out.extend(trees);
            i = end.max(i + 1);
            continue;
        }
        i += 1;
    }
    out
}

/// Parses a path or use tree starting at `i`: its expansions and where it ends.
fn parse_tree(b: &[u8], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'{' {
            let mut all = Vec::new();
            i += 1;
            loop {
                while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
                    i += 1;
                }
                if i >= b.len() || b[i] == b'}' {
                    i += 1;
                    break;
                }
                let (inner, end) = parse_tree(b, i);
                for p in inner {
                    all.push(prefix.iter().cloned().chain(p).collect());
                }
                i = end;
            }
            return (all, i);
        }
        let start = i;
        while i < b.len() && is_ident(b[i]) {
            i += 1;
        }
        if start == i {
            return (vec![prefix], i);
        }
        prefix.push(String::from_utf8_lossy(&b[start..i]).into_owned());
        if b.get(i..i + 2) == Some(b"::") {
            i += 2;
        } else {
            return (vec![prefix], i);
        }
    }
}

/// `written` as an absolute module path, from module `at`.
fn absolute(at: &ModPath, written: &[String]) -> ModPath {
    let mut base: ModPath = Vec::new();
    let mut rest = written;
    match rest.first().map(String::as_str) {
        Some("crate") => rest = &rest[1..],
        Some("self") => {
            base = at.clone();
            rest = &rest[1..];
        }
        Some("super") => {
            base = at.clone();
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        _ => {}
    }
    base.extend(rest.iter().cloned());
    base
}

/// `pub use` re-exports: (module, name) → the path it stands for.
fn reexports(mods: &BTreeMap<ModPath, String>) -> HashMap<(ModPath, String), ModPath> {
    let mut out = HashMap::new();
    for (m, src) in mods {
        for (n, _) in src.match_indices("use ") {
            let before = &src[..n];
            let line_start = before.rfind('\n').map_or(0, |x| x + 1);
            if !src[line_start..n].trim_start().starts_with("pub") {
                continue;
            }
            let (trees, _) = parse_tree(src.as_bytes(), n + 4);
            for t in trees {
                let Some(last) = t.last() else { continue };
                let name = if last == "self" { t[t.len() - 2].clone() } else { last.clone() };
                let written = if last == "self" { &t[..t.len() - 1] } else { &t[..] };
                let target = match written.first().map(String::as_str) {
                    Some("crate" | "self" | "super") => absolute(m, written),
                    // A path from a child module in scope (`pub use registry::Collections`); anything
                    // else is another crate's.
                    Some(first) if mods.contains_key(&[m.clone(), vec![first.to_string()]].concat()) => {
                        [m.clone(), written.to_vec()].concat()
                    }
                    _ => continue,
                };
                out.insert((m.clone(), name), target);
            }
        }
    }
    out
}

/// Follows re-exports until the path names a module, or an item of a module.
fn resolve(p: ModPath, mods: &BTreeMap<ModPath, String>, re: &HashMap<(ModPath, String), ModPath>) -> ModPath {
    let mut p = p;
    for _ in 0..16 {
        // The longest prefix that is a module; the next segment is an item in it.
        let mut k = p.len();
        while k > 0 && !mods.contains_key(&p[..k]) {
            k -= 1;
        }
        if k == p.len() {
            return p;
        }
        match re.get(&(p[..k].to_vec(), p[k].clone())) {
            Some(target) if *target != p[..=k] => {
                let mut next = target.clone();
                next.extend(p[k + 1..].iter().cloned());
                p = next;
            }
            _ => return p[..k].to_vec(),
        }
    }
    p
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let re = reexports(&mods);
    // parent → (child → children it depends on), with one witness path per edge.
    let mut levels: BTreeMap<ModPath, BTreeMap<String, BTreeMap<String, String>>> = BTreeMap::new();
    for (m, text) in &mods {
        for written in paths(text) {
            let target = resolve(absolute(m, &written), &mods, &re);
            let common = m.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common >= m.len() || common >= target.len() {
                continue; // an ancestor's or a descendant's item: containment
            }
            let parent = m[..common].to_vec();
            let (from, to) = (m[common].clone(), target[common].clone());
            let witness = format!("{} uses {}", m.join("::"), written.join("::"));
            levels.entry(parent).or_default().entry(from).or_default().entry(to).or_insert(witness);
        }
    }
    let mut cycles = Vec::new();
    for (parent, edges) in &levels {
        for cycle in strongly_connected(edges).into_iter().filter(|c| c.len() > 1) {
            let inside: Vec<String> = cycle.iter().cloned().collect();
            let witnesses: Vec<&String> = cycle
                .iter()
                .flat_map(|a| edges.get(a).into_iter().flatten().filter(|(b, _)| cycle.contains(*b)).map(|(_, w)| w))
                .collect();
            cycles.push(format!("in crate::{}: {inside:?}, because {witnesses:?}", parent.join("::")));
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
    assert!(levels.get(&Vec::new()).is_some_and(|top| top.len() > 10), "the checker sees the crate's modules");
}

/// Tarjan's strongly connected components of a small graph.
fn strongly_connected(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<BTreeSet<String>> {
    struct S<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: HashMap<String, usize>,
        low: HashMap<String, usize>,
        stack: Vec<String>,
        on: BTreeSet<String>,
        next: usize,
        out: Vec<BTreeSet<String>>,
    }
    fn visit(s: &mut S<'_>, v: &str) {
        s.index.insert(v.to_string(), s.next);
        s.low.insert(v.to_string(), s.next);
        s.next += 1;
        s.stack.push(v.to_string());
        s.on.insert(v.to_string());
        let targets: Vec<String> = s.edges.get(v).map(|m| m.keys().cloned().collect()).unwrap_or_default();
        for w in targets {
            if !s.index.contains_key(&w) {
                visit(s, &w);
                let lw = s.low[&w];
                let lv = s.low[v];
                s.low.insert(v.to_string(), lv.min(lw));
            } else if s.on.contains(&w) {
                let iw = s.index[&w];
                let lv = s.low[v];
                s.low.insert(v.to_string(), lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(&w);
                let done = w == v;
                comp.insert(w);
                if done {
                    break;
                }
            }
            s.out.push(comp);
        }
    }
    let mut s = S {
        edges,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    let nodes: BTreeSet<String> =
        edges.iter().flat_map(|(a, b)| std::iter::once(a.clone()).chain(b.keys().cloned())).collect();
    for v in nodes {
        if !s.index.contains_key(&v) {
            visit(&mut s, &v);
        }
    }
    s.out
}

#[test]
fn the_checker_finds_a_cycle_when_there_is_one() {
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into(), "w".into());
    edges.entry("b".into()).or_default().insert("c".into(), "w".into());
    edges.entry("c".into()).or_default().insert("a".into(), "w".into());
    edges.entry("c".into()).or_default().insert("d".into(), "w".into());
    let sccs: Vec<_> = strongly_connected(&edges).into_iter().filter(|c| c.len() > 1).collect();
    assert_eq!(sccs, vec![BTreeSet::from(["a".to_string(), "b".to_string(), "c".to_string()])]);
    // Paths in use trees, through re-exports.
    let found =
        paths(&strip("use crate::{a::{B, c::D}, e};\n// crate::ignored::X\nlet s = \"crate::nope\"; super::f::g();"));
    assert_eq!(
        found,
        vec![vec!["crate", "a", "B"], vec!["crate", "a", "c", "D"], vec!["crate", "e"], vec!["super", "f", "g"],]
            .into_iter()
            .map(|v| v.into_iter().map(String::from).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    );
}

#[test]
fn the_library_depends_on_no_command_line_crate() {
    let manifest = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let deps: Vec<&str> = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap()
        .split("\n[")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split(['.', '=', ' ']).next())
        .filter(|n| !n.is_empty())
        .collect();
    for forbidden in ["clap", "anyhow", "indicatif", "tracing-subscriber"] {
        assert!(!deps.contains(&forbidden), "prag-node depends on {forbidden}");
    }
    assert!(deps.contains(&"axum"), "the dependency list was read: {deps:?}");
}
