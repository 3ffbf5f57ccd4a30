//! The authority's layering, checked from its sources: the domain does not speak HTTP, and no
//! two modules import each other, directly or around a circle (ARCHITECTURE.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading src") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a source file defines: `src/domain/runs/ingestion.rs` → `domain::runs::ingestion`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file
        .strip_prefix(src)
        .expect("under src")
        .with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|p| p != "mod" && p != "lib")
        .collect();
    parts.join("::")
}

/// A source's code: what precedes its unit tests, without comment lines.
fn code(text: &str) -> String {
    let before_tests = text.split("#[cfg(test)]").next().unwrap_or(text);
    before_tests
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules a source file of `module` names by `crate::` and `super::` paths outside its
/// tests and comments, cut to `depth` segments (an item such as `domain::Authority` stands for
/// its module, `domain`).
fn imports(module: &str, text: &str, depth: usize) -> BTreeSet<String> {
    let code = code(text);
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    let mut out = BTreeSet::new();
    let crate_paths = code
        .match_indices("crate::")
        .map(|(i, m)| (String::new(), &code[i + m.len()..]));
    let super_paths = code
        .match_indices("super::")
        .filter(|(i, _)| !code[..*i].ends_with("::"))
        .map(|(i, m)| (format!("{parent}::"), &code[i + m.len()..]));
    for (base, rest) in crate_paths.chain(super_paths) {
        let rest = format!("{base}{rest}");
        let rest = rest.trim_start_matches("::");
        let path: Vec<&str> = rest
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .next()
            .unwrap_or("")
            .split("::")
            .filter(|s| !s.is_empty())
            .take_while(|s| s.chars().next().is_some_and(char::is_lowercase))
            .take(depth)
            .collect();
        if let Some(first) = path.first()
            && first.chars().next().is_some_and(char::is_lowercase)
        {
            out.insert(path.join("::"));
        }
    }
    out
}

fn files() -> (PathBuf, Vec<(PathBuf, String)>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    sources(&src, &mut paths);
    paths.sort();
    let files = paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("reading a source");
            (p, text)
        })
        .collect();
    (src, files)
}

#[test]
fn the_domain_does_not_speak_http() {
    let (src, files) = files();
    let mut offences = Vec::new();
    for (path, text) in &files {
        let module = module_of(&src, path);
        if !module.starts_with("domain") {
            continue;
        }
        let code = code(text);
        for word in ["crate::http", "axum", "StatusCode", "ApiError", "AppState"] {
            if code.contains(word) {
                offences.push(format!("{module} names {word}"));
            }
        }
    }
    assert!(offences.is_empty(), "{offences:#?}");
}

/// Tarjan would do; the graphs are small, so a depth-first search that reports the first
/// circle it finds is enough.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

/// The import graph between the modules at `depth` (1: `domain`, `http`, `setup`, …; 2:
/// `domain::runs`, `http::routes`, …), each module's own submodules folded into it.
fn graph(depth: usize) -> BTreeMap<String, BTreeSet<String>> {
    let (src, files) = files();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in &files {
        let module = module_of(&src, path);
        if module.is_empty() || module == "testing" {
            continue;
        }
        let from: Vec<&str> = module.split("::").take(depth).collect();
        let from = from.join("::");
        let targets = graph.entry(from.clone()).or_default();
        for to in imports(&module, text, depth) {
            let prefix_of_from = from.starts_with(&to) || to.starts_with(&from);
            if !prefix_of_from {
                targets.insert(to);
            }
        }
    }
    graph
}

#[test]
fn layers_import_downwards_only() {
    let layers = graph(1);
    assert!(
        layers.contains_key("domain") && layers.contains_key("http"),
        "{layers:?}"
    );
    assert!(!layers["domain"].contains("http"), "{layers:?}");
    assert!(!layers["setup"].contains("http"), "{layers:?}");
    assert_eq!(find_cycle(&layers), None, "{layers:#?}");
}

#[test]
fn no_module_imports_around_a_circle() {
    for depth in [2, 3] {
        let modules = graph(depth);
        assert_eq!(find_cycle(&modules), None, "depth {depth}: {modules:#?}");
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
