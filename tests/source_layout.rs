//! The source of the collector, the edge library and this test kit keeps two rules: no module
//! uses one that uses it back (directly or through others), and no file is longer than 650 lines
//! unless its first lines say why. Read from the source itself, whatever its files are, so
//! a change that breaks either fails here.
//!
//! A module's uses are the paths its file names: `crate::a::b`, `super::x`, `self::x` and, in
//! `use` lines, its own child modules. A path is resolved to the longest module it names; a
//! re-export counts as a use of the module that re-exports. Each crate under `src` (the library,
//! each binary) is read on its own, its modules found from its root by their `mod name;` lines
//! (a `#[path]` is not followed). The line rule holds for every file under `src`.

use edgelog_testkit::paths::repo_root;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The `src` folders checked, from the repository root.
const CRATES: [&str; 3] = ["collector/src", "edge-app/src", "tests/src"];
/// Past this many lines a file must say why in its first lines.
const LONG_FILE_LINES: usize = 650;
/// The words a long file's first lines use to say why.
const LONG_FILE_MARK: &str = "Longer than";
/// How many first lines may say why.
const HEAD_LINES: usize = 12;

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {dir:?}: {e}"));
        for e in entries {
            let p = e.unwrap_or_else(|e| panic!("read {dir:?}: {e}")).path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path:?}: {e}"))
}

/// A file's name in messages: its module path from `src` (`output::kinesis::api`).
fn module_name(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
        parts.pop();
    }
    parts.join("::")
}

/// The crates under a `src` folder, each as its root file and its modules (module path -> file):
/// the library (`lib.rs`), the binaries (`main.rs`, `bin/NAME.rs`, `bin/NAME/main.rs`).
fn crates(src: &Path) -> Vec<(PathBuf, BTreeMap<String, PathBuf>)> {
    let mut roots = vec![src.join("lib.rs"), src.join("main.rs")];
    if let Ok(entries) = std::fs::read_dir(src.join("bin")) {
        let mut bins: Vec<PathBuf> = entries
            .map(|e| e.expect("read src/bin").path())
            .map(|p| if p.is_dir() { p.join("main.rs") } else { p })
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .collect();
        bins.sort();
        roots.extend(bins);
    }
    roots
        .into_iter()
        .filter(|r| r.is_file())
        .map(|r| {
            let mods = modules(&r);
            (r, mods)
        })
        .collect()
}

/// The library's modules (none when `src` has no `lib.rs`).
fn library(src: &Path) -> BTreeMap<String, PathBuf> {
    let lib = src.join("lib.rs");
    crates(src)
        .into_iter()
        .find(|(root, _)| *root == lib)
        .map(|(_, mods)| mods)
        .unwrap_or_default()
}

/// A crate's modules, found from its root file by their `mod name;` lines: `name.rs` or
/// `name/mod.rs` beside the root or a `mod.rs`, in the folder named after any other file.
fn modules(root: &Path) -> BTreeMap<String, PathBuf> {
    let mut mods = BTreeMap::new();
    let mut todo = vec![(String::new(), root.to_path_buf())];
    while let Some((name, file)) = todo.pop() {
        let here = file.parent().expect("a folder");
        let dir = if file == root || file.file_name().is_some_and(|n| n == "mod.rs") {
            here.to_path_buf()
        } else {
            here.join(file.file_stem().expect("a file name"))
        };
        for line in read(&file).lines() {
            let decl = without_visibility(line.trim())
                .strip_prefix("mod ")
                .and_then(|r| r.strip_suffix(';'));
            let Some(child) = decl else { continue };
            let path = if name.is_empty() {
                child.to_string()
            } else {
                format!("{name}::{child}")
            };
            let candidates = [
                dir.join(format!("{child}.rs")),
                dir.join(child).join("mod.rs"),
            ];
            if let Some(f) = candidates.into_iter().find(|f| f.is_file()) {
                todo.push((path, f));
            }
        }
        mods.insert(name, file);
    }
    mods
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

/// An item's line without its `pub`, `pub(crate)`, `pub(super)` or `pub(in path)`.
fn without_visibility(line: &str) -> &str {
    let Some(rest) = line.strip_prefix("pub") else {
        return line;
    };
    let rest = match rest.strip_prefix('(') {
        Some(inner) => match inner.split_once(')') {
            Some((_, after)) => after,
            None => return line,
        },
        None => rest,
    };
    match rest.strip_prefix(' ') {
        Some(after) => after.trim_start(),
        None => line,
    }
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
        let l = without_visibility(l.trim());
        l.starts_with("mod ") && l.ends_with('{')
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
        let Some(rest) = without_visibility(line).strip_prefix("use ") else {
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
        let decl = without_visibility(line)
            .strip_prefix("mod ")
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

/// Which modules each module of a crate uses.
fn graph(mods: &BTreeMap<String, PathBuf>) -> BTreeMap<String, BTreeSet<String>> {
    mods.iter()
        .map(|(m, path)| (m.clone(), uses(m, &read(path), mods)))
        .collect()
}

/// The first cycle found by depth-first search, as `a -> b -> a`.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<String> {
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
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
        .map(|c| c.join(" -> "))
}

/// One message per crate under `src` whose modules use each other in a cycle.
fn cycles(src: &Path) -> Vec<String> {
    crates(src)
        .iter()
        .filter_map(|(_, mods)| find_cycle(&graph(mods)))
        .map(|cycle| format!("import cycle: {cycle} (in {})", src.display()))
        .collect()
}

/// One message per file under `src` over [`LONG_FILE_LINES`] whose first lines do not say why.
fn unexplained_long_files(src: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for path in rust_files(src) {
        let text = read(&path);
        let lines = text.lines().count();
        let head: String = text.lines().take(HEAD_LINES).collect::<Vec<_>>().join("\n");
        if lines > LONG_FILE_LINES && !head.contains(LONG_FILE_MARK) {
            let m = module_name(src, &path);
            out.push(format!(
                "{m} ({}) has {lines} lines and its first lines do not say why (\"{LONG_FILE_MARK} ...\")",
                path.display()
            ));
        }
    }
    out
}

fn sources() -> Vec<PathBuf> {
    let root = repo_root();
    CRATES.iter().map(|c| root.join(c)).collect()
}

#[test]
fn no_module_uses_one_that_uses_it_back() {
    let mut found = Vec::new();
    for src in sources() {
        // The reader sees uses: a library of several modules names some of them.
        let library = library(&src);
        let seen: usize = graph(&library).values().map(BTreeSet::len).sum();
        assert!(
            library.len() < 2 || seen > 0,
            "no module of {} uses another: the reader no longer reads this source",
            src.display()
        );
        found.extend(cycles(&src));
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn long_files_say_why_in_their_first_lines() {
    let found: Vec<String> = sources()
        .iter()
        .flat_map(|src| unexplained_long_files(src))
        .collect();
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// A copy of a source tree in a temporary folder.
fn copy_tree(from: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for f in rust_files(from) {
        let to = dir
            .path()
            .join(f.strip_prefix(from).expect("under the tree"));
        std::fs::create_dir_all(to.parent().expect("a folder")).expect("mkdir");
        std::fs::copy(&f, &to).expect("copy");
    }
    dir
}

/// Writes source files (path, text) into a temporary folder.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, text) in files {
        let to = dir.path().join(path);
        std::fs::create_dir_all(to.parent().expect("a folder")).expect("mkdir");
        std::fs::write(&to, text).expect("write");
    }
    dir
}

/// `line` put into `text` after its leading `//!` lines.
fn insert_after_docs(text: &str, line: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| !l.starts_with("//!") && !l.trim().is_empty())
        .unwrap_or(lines.len());
    let mut out: Vec<&str> = lines[..at].to_vec();
    out.push(line);
    out.extend(&lines[at..]);
    out.join("\n") + "\n"
}

#[test]
fn the_reader_sees_every_kind_of_use_and_nothing_else() {
    let dir = tree(&[
        (
            "lib.rs",
            "mod a;\nmod d;\nmod e;\nmod publisher;\npub use a::b::Thing;\n",
        ),
        (
            "a/mod.rs",
            "mod b;\nmod c;\nuse self::c::Other;\nfn f() -> b::Thing { todo!() }\n",
        ),
        ("a/b.rs", "use super::super::d::Base;\npub struct Thing;\n"),
        ("a/c.rs", "use crate::d;\npub struct Other;\n"),
        (
            "d.rs",
            "// crate::a is named in a comment only\npub struct Base;\n\
             #[cfg(test)]\npub(crate) mod tests {\n    use crate::a::b::Thing;\n}\n",
        ),
        (
            "e/mod.rs",
            "pub(crate) mod f;\npub(super) use f::Inner;\npub(in crate::e) mod g;\n\
             fn g() -> g::Deep { todo!() }\n",
        ),
        ("e/f.rs", "pub struct Inner;\n"),
        ("e/g.rs", "pub struct Deep;\n"),
        ("publisher.rs", "mod inner;\nuse crate::e;\n"),
        ("publisher/inner.rs", "use super::super::a;\n"),
        ("stray.rs", "use crate::a;\n"),
        ("main.rs", "mod cli;\nfn main() {\n    cli::run()\n}\n"),
        ("cli/mod.rs", "mod run;\npub use run::run;\n"),
        ("cli/run.rs", "pub fn run() {}\n"),
        ("bin/tool.rs", "use crate::d;\n"),
        ("bin/big/main.rs", "mod x;\nmod y;\nuse x::One;\n"),
        ("bin/big/x.rs", "use super::y::Two;\n"),
        ("bin/big/y.rs", "pub struct Two;\n"),
    ]);
    let graphs: Vec<BTreeMap<String, BTreeSet<String>>> = crates(dir.path())
        .iter()
        .map(|(_, mods)| graph(mods))
        .collect();
    let edges = |list: &[(&str, &[&str])]| -> BTreeMap<String, BTreeSet<String>> {
        list.iter()
            .map(|(m, to)| (m.to_string(), to.iter().map(|s| s.to_string()).collect()))
            .collect()
    };
    assert_eq!(
        graphs,
        vec![
            edges(&[
                ("", &["a", "a::b"]),
                ("a", &["a::b", "a::c"]),
                ("a::b", &["d"]),
                ("a::c", &["d"]),
                ("d", &[]),
                ("e", &["e::f", "e::g"]),
                ("e::f", &[]),
                ("e::g", &[]),
                ("publisher", &["e"]),
                ("publisher::inner", &["a"]),
            ]),
            edges(&[("", &["cli"]), ("cli", &["cli::run"]), ("cli::run", &[])]),
            edges(&[("", &["x"]), ("x", &["y"]), ("y", &[])]),
            edges(&[("", &[])]),
        ]
    );
    assert!(cycles(dir.path()).is_empty());
}

#[test]
fn a_use_that_closes_a_cycle_fails_in_a_copy_of_each_crate() {
    let mut checked = 0;
    for src in sources() {
        let library = library(&src);
        // Any use between two modules, reversed.
        let Some((from, to)) = graph(&library).into_iter().find_map(|(m, used)| {
            let to = used.into_iter().find(|u| !u.is_empty())?;
            (!m.is_empty()).then_some((m, to))
        }) else {
            continue;
        };
        let copy = copy_tree(&src);
        let file = copy
            .path()
            .join(library[&to].strip_prefix(&src).expect("under src"));
        let text = insert_after_docs(&read(&file), &format!("use crate::{from};"));
        std::fs::write(&file, text).expect("write");
        let found = cycles(copy.path());
        assert!(
            found.len() == 1 && found[0].starts_with("import cycle: "),
            "{} with {to} using {from} back: {found:?}",
            src.display()
        );
        let cycle = found[0].trim_start_matches("import cycle: ");
        assert!(
            cycle.contains(&from) && cycle.contains(&to),
            "{}: {cycle}",
            src.display()
        );
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} crates have a use to reverse");
}

#[test]
fn an_over_long_file_fails_in_a_copy_of_each_crate_unless_it_says_why() {
    for src in sources() {
        let copy = copy_tree(&src);
        let file = rust_files(copy.path())
            .into_iter()
            .find(|f| !read(f).contains(LONG_FILE_MARK))
            .expect("a file that does not say why it is long");
        let text = read(&file);
        let padding =
            "// padding\n".repeat(LONG_FILE_LINES + 1 - text.lines().count().min(LONG_FILE_LINES));
        std::fs::write(&file, format!("{text}{padding}")).expect("write");
        let found = unexplained_long_files(copy.path());
        let name = module_name(copy.path(), &file);
        assert!(
            found.len() == 1
                && found[0].starts_with(&format!("{name} ({}) has ", file.display()))
                && found[0].contains("lines and its first lines do not say why"),
            "{}: {found:?}",
            src.display()
        );
        let why = format!("//! {LONG_FILE_MARK} {LONG_FILE_LINES} lines: padding.\n");
        std::fs::write(&file, format!("{why}{text}{padding}")).expect("write");
        assert_eq!(unexplained_long_files(copy.path()), Vec::<String>::new());
    }
}
