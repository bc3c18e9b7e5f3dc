//! The collector's source keeps two rules: no module uses one that uses it back (directly or
//! through others), and no file is longer than about 600 lines unless its first lines say why.
//! Read from the source itself, so a change that breaks either fails here.
//!
//! A module's uses are the paths its file names: `crate::a::b`, `super::x`, `self::x` and, in
//! `use` lines, its own child modules. A path is resolved to the longest module it names; a
//! re-export counts as a use of the module that re-exports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Past this many lines a file must say why in its first lines.
const LONG_FILE_LINES: usize = 650;
/// The words a long file's first lines use to say why.
const LONG_FILE_MARK: &str = "Longer than";

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Module path (`output::kinesis::api`) of every source file, but the binary's `main.rs`.
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read src") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = src();
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut map = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&root).expect("under src");
        let mut parts: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        if parts == ["main"] {
            continue;
        }
        if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
            parts.pop();
        }
        map.insert(parts.join("::"), f);
    }
    map
}

/// The longest module named by the start of `path` (segments), if any.
fn resolve(path: &[String], mods: &BTreeMap<String, PathBuf>) -> Option<String> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| mods.contains_key(m))
}

/// The identifier path starting at `at` in `text` (`a::b::{c, d}` gives `a, b`).
fn path_at(text: &str, at: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = &text[at..];
    loop {
        let seg: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if seg.is_empty() {
            break;
        }
        rest = &rest[seg.len()..];
        out.push(seg);
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    out
}

fn uses(module: &str, text: &str, mods: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let here: Vec<String> = if module.is_empty() {
        vec![]
    } else {
        module.split("::").map(str::to_string).collect()
    };
    // `super` is the parent module; child modules are named from the module itself.
    let parent: Vec<String> = here[..here.len().saturating_sub(1)].to_vec();
    let children_base: Vec<String> = here.clone();
    let mut out = BTreeSet::new();
    // Inline modules (tests, fuzzing helpers; at the end of a file, by convention) are modules
    // of their own whose `super` is this one: not read.
    let inline = text.lines().position(|l| {
        let l = l.trim();
        (l.starts_with("mod ") || l.starts_with("pub mod ")) && l.ends_with('{')
    });
    let text = match inline {
        Some(n) => text.lines().take(n).collect::<Vec<_>>().join("\n"),
        None => text.to_string(),
    };
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for (at, _) in code.match_indices("crate::") {
        let p = path_at(&code, at + "crate::".len());
        if let Some(m) = resolve(&p, mods) {
            out.insert(m);
        }
    }
    for (at, _) in code.match_indices("super::") {
        if code[..at].ends_with("::") {
            continue; // `super::super::` is counted once, from its first `super`
        }
        let mut base = parent.clone();
        let mut p = path_at(&code, at + "super::".len());
        while p.first().is_some_and(|s| s == "super") {
            p.remove(0);
            base.pop();
        }
        let mut full = base.clone();
        full.extend(p);
        if let Some(m) = resolve(&full, mods) {
            out.insert(m);
        }
    }
    // Child modules named in `use` lines (`use body::x;`) and `self::`.
    for line in code.lines().map(str::trim) {
        let Some(rest) = line
            .strip_prefix("use ")
            .or_else(|| line.strip_prefix("pub use "))
        else {
            continue;
        };
        let rest = rest.strip_prefix("self::").unwrap_or(rest);
        let p = path_at(rest, 0);
        let mut full = children_base.clone();
        full.extend(p);
        if full.len() > children_base.len() {
            if let Some(m) = resolve(&full, mods) {
                if m.len() > children_base.join("::").len() {
                    out.insert(m);
                }
            }
        }
    }
    // Child modules named anywhere in the code (`disk::DiskBuffer`).
    for line in code.lines().map(str::trim) {
        let decl = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("pub(crate) mod "))
            .or_else(|| line.strip_prefix("mod "))
            .and_then(|r| r.strip_suffix(';'));
        let Some(child) = decl else { continue };
        let needle = format!("{child}::");
        let named = code.match_indices(&needle).any(|(at, _)| {
            !code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
        });
        let mut full = children_base.clone();
        full.push(child.to_string());
        if named && mods.contains_key(&full.join("::")) {
            out.insert(full.join("::"));
        }
    }
    out.remove(module);
    out
}

#[test]
fn no_module_uses_one_that_uses_it_back() {
    let mods = modules();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, path) in &mods {
        let text = std::fs::read_to_string(path).expect("read");
        graph.insert(m.clone(), uses(m, &text, &mods));
    }
    // Sanity: the reader sees the uses it should.
    assert!(graph["output::kinesis::deliver"].contains("output::kinesis::classify"));
    assert!(graph["http::routes"].contains("ingest"));
    // Any cycle, found by depth-first search.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == m) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        stack.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        if let Some(cycle) = visit(m, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn long_files_say_why_in_their_first_lines() {
    for (m, path) in modules() {
        let text = std::fs::read_to_string(&path).expect("read");
        let lines = text.lines().count();
        if lines > LONG_FILE_LINES {
            let head: String = text.lines().take(12).collect::<Vec<_>>().join("\n");
            assert!(
                head.contains(LONG_FILE_MARK),
                "{m} ({}) has {lines} lines and its first lines do not say why (\"{LONG_FILE_MARK} ...\")",
                path.display()
            );
        }
    }
}
