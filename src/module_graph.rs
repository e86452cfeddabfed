//! The crate's module graph as its source says it, checked by `cargo test` and so in CI.
//!
//! Every module (a file) is a node; an edge is any path it names into the crate: `crate::`,
//! `super::` and `self::` paths in `use` trees and in code, and the names those imports bring
//! in (`use crate::hosts::{self}` then `hosts::open(…)`). A path is followed to the module that
//! defines its item, through `pub use` re-exports and `#[macro_export]` macros. Then:
//! - no module imports from its parent or any ancestor (what a parent's children share lives in
//!   a sibling they all import);
//! - no circle, between files or between the top-level rooms;
//! - the leaf modules use nothing in the crate;
//! - only `cli.rs` and `lib.rs` name clap;
//! - no source file is over [`MAX_LINES`] lines, and no room (a top-level module with its
//!   files and scripts) holds more than a fifth of the crate's lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules every other may use, which use nothing in the crate.
const LEAVES: &[&str] = &[
    "error", "paths", "process", "shell", "ui", "validate", "timings",
];
/// The only modules that may name clap.
const CLAP: &[&str] = &["cli", "lib"];
const MAX_LINES: usize = 900;

/// A module, by its path from the crate root (`["rollout", "fleet"]`); the root is `[]`.
type Module = Vec<String>;

struct Crate {
    /// Each module's file and code (tests and comments left out).
    modules: BTreeMap<Module, (PathBuf, String)>,
    /// Macros by name, with the module that defines them (`#[macro_export]` puts them at the
    /// root, but their code, and so the dependency, is where they are written).
    macros: BTreeMap<String, Module>,
}

impl Crate {
    fn read() -> Crate {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut modules = BTreeMap::new();
        visit(&src.join("lib.rs"), Vec::new(), &mut modules);
        let mut macros = BTreeMap::new();
        for (module, (_, code)) in &modules {
            for (at, _) in code.match_indices("macro_rules!") {
                let name = identifier(code[at + "macro_rules!".len()..].trim_start());
                macros.insert(name.to_string(), module.clone());
            }
        }
        Crate { modules, macros }
    }

    fn is_module(&self, path: &[String]) -> bool {
        self.modules.contains_key(path)
    }

    /// The module that defines what `path` (absolute, from the root) names.
    fn resolve(&self, path: &[String], depth: usize) -> Option<Module> {
        let mut module: Module = Vec::new();
        for (i, segment) in path.iter().enumerate() {
            let mut next = module.clone();
            next.push(segment.clone());
            if self.is_module(&next) {
                module = next;
                continue;
            }
            if path.get(i + 1).is_none() && self.macros.contains_key(segment) && module.is_empty() {
                return self.macros.get(segment).cloned();
            }
            // An item of `module`, or a name it re-exports from elsewhere.
            if depth < 8
                && let Some(target) = self.reexport(&module, segment)
            {
                let mut rest = target;
                rest.extend(path[i + 1..].iter().cloned());
                return self.resolve(&rest, depth + 1);
            }
            return Some(module);
        }
        Some(module)
    }

    /// Where `module` re-exports `name` from (`pub use x::{name}`), as an absolute path.
    fn reexport(&self, module: &Module, name: &str) -> Option<Vec<String>> {
        let (_, code) = self.modules.get(module)?;
        for statement in use_statements(code).filter(|s| s.public) {
            for path in statement.paths {
                let (path, alias) = path;
                if alias.as_deref().unwrap_or(path.last()?) == name {
                    return self.absolute(module, &path);
                }
            }
        }
        None
    }

    /// `path` from `module`, absolute; a relative path starts at a child module.
    fn absolute(&self, module: &Module, path: &[String]) -> Option<Vec<String>> {
        absolute(module, path).or_else(|| {
            let mut child = module.clone();
            child.push(path.first()?.clone());
            self.is_module(&child)
                .then(|| [module.as_slice(), path].concat())
        })
    }

    /// The modules `module`'s code names.
    fn uses(&self, module: &Module) -> BTreeSet<Module> {
        let (_, code) = &self.modules[module];
        let mut found = BTreeSet::new();
        let mut aliases: BTreeMap<String, Module> = BTreeMap::new();
        let add = |path: Vec<String>, found: &mut BTreeSet<Module>| {
            if let Some(target) = self
                .absolute(module, &path)
                .and_then(|p| self.resolve(&p, 0))
            {
                if std::env::var_os("GRAPH_DEBUG").is_some() && module.starts_with(&target) {
                    eprintln!("{module:?} -> {path:?} -> {target:?}");
                }
                found.insert(target);
            }
        };
        for statement in use_statements(code) {
            for (path, alias) in statement.paths {
                let Some(name) = alias.or_else(|| path.last().cloned()) else {
                    continue;
                };
                if let Some(target) = self.absolute(module, &path)
                    && self.is_module(&target)
                {
                    aliases.insert(name, target);
                }
                add(path, &mut found);
            }
        }
        for path in code_paths(code) {
            add(path, &mut found);
        }
        for (alias, target) in &aliases {
            for path in alias_paths(code, alias) {
                let mut full = target.clone();
                full.extend(path);
                if let Some(resolved) = self.resolve(&full, 0) {
                    found.insert(resolved);
                }
            }
        }
        found.remove(module);
        found
    }

    fn graph(&self) -> BTreeMap<Module, BTreeSet<Module>> {
        self.modules
            .keys()
            .map(|module| (module.clone(), self.uses(module)))
            .collect()
    }
}

/// Reads `file` as `module` and the modules it declares (`mod x;`), tests left out.
fn visit(file: &Path, module: Module, modules: &mut BTreeMap<Module, (PathBuf, String)>) {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let dir = match file.file_stem().and_then(|s| s.to_str()) {
        Some("lib" | "mod") => file.parent().expect("a parent").to_path_buf(),
        Some(stem) => file.parent().expect("a parent").join(stem),
        None => unreachable!("a file name"),
    };
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let declared = visibility_stripped(line.trim())
            .strip_prefix("mod ")
            .and_then(|rest| rest.strip_suffix(';'));
        let test_only = i > 0 && lines[i - 1].trim() == "#[cfg(test)]";
        if let Some(name) = declared.filter(|_| !test_only) {
            let child = [
                dir.join(format!("{name}.rs")),
                dir.join(name).join("mod.rs"),
            ]
            .into_iter()
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("no file for mod {name} in {}", file.display()));
            let mut path = module.clone();
            path.push(name.to_string());
            visit(&child, path, modules);
        }
    }
    modules.insert(module, (file.to_path_buf(), code_of(&text)));
}

/// The code of a file: without its `#[cfg(test)]` module and without comments.
fn code_of(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines.peek().is_some_and(|next| {
                next.trim_start()
                    .trim_start_matches("pub ")
                    .starts_with("mod ")
            })
            && lines
                .peek()
                .is_some_and(|next| next.trim_end().ends_with('{'))
        {
            break;
        }
        if !line.trim_start().starts_with("//") {
            code.push_str(line);
            code.push('\n');
        }
    }
    code
}

/// `pub mod x;`, `pub(crate) mod x;` → `mod x;`
fn visibility_stripped(line: &str) -> &str {
    let Some(rest) = line.strip_prefix("pub") else {
        return line;
    };
    match rest.strip_prefix('(') {
        Some(scoped) => scoped
            .split_once(')')
            .map_or(line, |(_, after)| after.trim_start()),
        None => rest.trim_start(),
    }
}

fn identifier(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// `path` (starting with `crate`, `super` or `self`, or relative) from `module`, absolute.
fn absolute(module: &Module, path: &[String]) -> Option<Vec<String>> {
    let mut at = module.clone();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            at.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                at.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    // `use super::{self, x}` names the module itself.
    let rest = rest.iter().filter(|s| *s != "self");
    at.extend(rest.cloned());
    Some(at)
}

/// One `use` statement: each path it imports, with its `as` name.
struct Use {
    public: bool,
    paths: Vec<(Vec<String>, Option<String>)>,
}

fn use_statements(code: &str) -> impl Iterator<Item = Use> + '_ {
    let mut rest = code;
    std::iter::from_fn(move || {
        loop {
            let at = rest.find("use ")?;
            let before = &rest[..at];
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let prefix = before[line_start..].trim();
            let end = rest[at..].find(';').map_or(rest.len(), |e| at + e);
            let tree = &rest[at + 4..end];
            rest = &rest[end..];
            if !(prefix.is_empty() || prefix.starts_with("pub")) {
                continue;
            }
            let mut paths = Vec::new();
            expand(&mut Vec::new(), tree, &mut paths);
            return Some(Use {
                public: prefix.starts_with("pub"),
                paths,
            });
        }
    })
}

/// Expands a use tree (`a::{b, c::{d as e}}`) into its paths.
fn expand(prefix: &mut Vec<String>, tree: &str, out: &mut Vec<(Vec<String>, Option<String>)>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let depth = prefix.len();
        prefix.extend(head);
        for part in split_top_level(inner) {
            expand(prefix, part, out);
        }
        prefix.truncate(depth);
        return;
    }
    if tree.is_empty() {
        return;
    }
    let (path, alias) = match tree.split_once(" as ") {
        Some((p, a)) => (p, Some(a.trim().to_string())),
        None => (tree, None),
    };
    let mut full = prefix.clone();
    full.extend(path.split("::").map(|s| s.trim().to_string()));
    if full.last().is_some_and(|s| s == "*") {
        full.pop();
    }
    out.push((full, alias));
}

/// Splits `a, b::{c, d}, e` at the commas outside braces.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// `crate::a::b`, `super::a` and `self::a` paths written in code (outside `use`).
fn code_paths(code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for root in ["crate::", "super::", "self::"] {
        for (at, _) in code.match_indices(root) {
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            let path = segments(&code[at..]);
            // A group or glob is a `use` tree, read whole by `use_statements`.
            let after = &code[at + path.iter().map(|s| s.len() + 2).sum::<usize>() - 2..];
            if !after.starts_with("::{") && !after.starts_with("::*") {
                found.push(path);
            }
        }
    }
    found
}

/// `alias::x::y` written in code, as `x::y`.
fn alias_paths(code: &str, alias: &str) -> Vec<Vec<String>> {
    let needle = format!("{alias}::");
    let mut found = Vec::new();
    for (at, _) in code.match_indices(&needle) {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let path = segments(&code[at + needle.len()..]);
        if !path.is_empty() {
            found.push(path);
        }
    }
    found
}

/// The identifiers of a path at the start of `text` (`a::b::c(` → a, b, c).
fn segments(text: &str) -> Vec<String> {
    let mut path = Vec::new();
    let mut rest = text;
    loop {
        let name = identifier(rest);
        if name.is_empty() {
            break;
        }
        path.push(name.to_string());
        rest = &rest[name.len()..];
        match rest.strip_prefix("::") {
            Some(more) if !more.starts_with(['<', '{']) => rest = more,
            _ => break,
        }
    }
    path
}

fn name(module: &Module) -> String {
    if module.is_empty() {
        "crate".into()
    } else {
        module.join("::")
    }
}

/// A circle through `from`, as the path that closes it.
fn circle<T: Ord + Clone>(
    graph: &BTreeMap<T, BTreeSet<T>>,
    from: &T,
    path: &mut Vec<T>,
    done: &mut BTreeSet<T>,
) -> Option<Vec<T>> {
    if let Some(start) = path.iter().position(|m| m == from) {
        let mut found = path[start..].to_vec();
        found.push(from.clone());
        return Some(found);
    }
    if done.contains(from) {
        return None;
    }
    path.push(from.clone());
    for next in graph.get(from).into_iter().flatten() {
        if let Some(found) = circle(graph, next, path, done) {
            return Some(found);
        }
    }
    path.pop();
    done.insert(from.clone());
    None
}

fn first_circle<T: Ord + Clone>(graph: &BTreeMap<T, BTreeSet<T>>) -> Option<Vec<T>> {
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|start| circle(graph, start, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_imports_from_its_parent() {
    let krate = Crate::read();
    assert!(krate.modules.len() > 40, "found too few modules");
    let mut upward = Vec::new();
    for (module, uses) in krate.graph() {
        for used in uses {
            if !used.is_empty() && module.starts_with(&used) {
                upward.push(format!("{} uses {}", name(&module), name(&used)));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports from a parent:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_circle_between_files_or_rooms() {
    let graph = Crate::read().graph();
    if let Some(found) = first_circle(&graph) {
        let names: Vec<String> = found.iter().map(name).collect();
        panic!("circle between files: {}", names.join(" → "));
    }
    let mut rooms: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, uses) in &graph {
        let Some(room) = module.first() else { continue };
        let entry = rooms.entry(room.clone()).or_default();
        entry.extend(
            uses.iter()
                .filter_map(|u| u.first())
                .filter(|u| *u != room)
                .cloned(),
        );
    }
    if let Some(found) = first_circle(&rooms) {
        panic!("circle between rooms: {}", found.join(" → "));
    }
}

#[test]
fn leaf_modules_use_nothing_in_the_crate() {
    let krate = Crate::read();
    for leaf in LEAVES {
        let module = vec![leaf.to_string()];
        assert!(krate.is_module(&module), "no module {leaf}");
        let uses: Vec<String> = krate.uses(&module).iter().map(name).collect();
        assert!(uses.is_empty(), "{leaf} uses {uses:?}");
    }
}

#[test]
fn only_the_command_line_names_clap() {
    let krate = Crate::read();
    let naming: Vec<String> = krate
        .modules
        .iter()
        .filter(|(module, (_, code))| {
            let file = module.first().map_or("lib", String::as_str);
            !(module.len() <= 1 && CLAP.contains(&file))
                && (code.contains("clap::") || code.contains("use clap"))
        })
        .map(|(module, _)| name(module))
        .collect();
    assert!(naming.is_empty(), "{naming:?} name clap");
}

#[test]
fn no_source_file_is_too_long() {
    // Every file, unit tests included: a long test file is as hard to carry on as any other.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = [files_under(&src, "rs"), files_under(&src, "sh")].concat();
    let long: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let lines = std::fs::read_to_string(file).ok()?.lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", file.display()))
        })
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}

#[test]
fn no_room_holds_more_than_a_fifth_of_the_lines() {
    let krate = Crate::read();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut rooms: BTreeMap<String, usize> = BTreeMap::new();
    let mut count = |file: &Path| {
        let lines = std::fs::read_to_string(file).map_or(0, |t| t.lines().count());
        let relative = file.strip_prefix(&src).expect("under src");
        let room = relative.components().next().expect("a first part");
        let room = room
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        *rooms.entry(room).or_default() += lines;
    };
    for (file, _) in krate.modules.values() {
        count(file);
    }
    for script in files_under(&src, "sh") {
        count(&script);
    }
    let total: usize = rooms.values().sum();
    let large: Vec<String> = rooms
        .iter()
        .filter(|(_, lines)| **lines * 5 > total)
        .map(|(room, lines)| format!("{room}: {lines} of {total} lines"))
        .collect();
    assert!(large.is_empty(), "rooms over a fifth: {large:?}");
}

fn files_under(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            found.extend(files_under(&path, extension));
        } else if path.extension().is_some_and(|e| e == extension) {
            found.push(path);
        }
    }
    found
}

#[test]
fn the_checker_follows_use_trees_aliases_and_reexports() {
    let mut paths = Vec::new();
    expand(
        &mut Vec::new(),
        "crate::{a, b::{self, c as d}, e::*}",
        &mut paths,
    );
    let flat: Vec<(String, Option<String>)> =
        paths.into_iter().map(|(p, a)| (p.join("::"), a)).collect();
    assert_eq!(
        flat,
        [
            ("crate::a".to_string(), None),
            ("crate::b::self".to_string(), None),
            ("crate::b::c".to_string(), Some("d".to_string())),
            ("crate::e".to_string(), None),
        ]
    );
    assert_eq!(
        code_paths("x = crate::f::g();\nsuper::h::<T>();\n$crate::i"),
        [vec!["crate", "f", "g"], vec!["super", "h"]]
    );
    assert_eq!(
        alias_paths("hosts::open(a); my_hosts::x", "hosts"),
        [vec!["open"]]
    );
    let here = vec!["rollout".to_string(), "fleet".to_string()];
    let up = |p: &str| absolute(&here, &p.split("::").map(String::from).collect::<Vec<_>>());
    assert_eq!(up("super::Options").unwrap(), ["rollout", "Options"]);
    assert_eq!(up("super::super::ui").unwrap(), ["ui"]);
    // A real re-export: `crate::remote::Remote` is defined in remote::transport.
    let krate = Crate::read();
    let path: Vec<String> = ["remote", "Remote"].map(String::from).to_vec();
    assert_eq!(krate.resolve(&path, 0).unwrap(), ["remote", "transport"]);
    // `crate::fail!` is the error module's macro.
    assert_eq!(krate.resolve(&["fail".to_string()], 0).unwrap(), ["error"]);
}

#[test]
fn a_circle_is_found_and_named() {
    let graph: BTreeMap<&str, BTreeSet<&str>> = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(from, to)| (from, BTreeSet::from([to])))
        .collect();
    assert_eq!(first_circle(&graph).unwrap(), ["a", "b", "c", "a"]);
}
