//! The crate's module graph as its source says it (`crate::` paths outside tests), checked by
//! `cargo test` and so in CI: no cycle among the top-level modules, the leaf modules depend on
//! nothing in the crate, and no stage imports `cli`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Modules every other may use, which use nothing in the crate.
const LEAVES: &[&str] = &["error", "paths", "process", "shell", "ui", "validate"];

/// Top-level module → the top-level modules its code names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = Vec::new();
    collect(&src, &mut files);
    let test_only = test_only_files(&files);
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src");
        let module = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|c| c.trim_end_matches(".rs").to_string())
            .expect("a module");
        if ["lib", "main"].contains(&module.as_str()) || test_only.contains(&file) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable");
        let code = text
            .split("#[cfg(test)]\nmod tests {")
            .next()
            .unwrap_or_default();
        let uses = graph.entry(module.clone()).or_default();
        for used in crate_paths(code) {
            if used != module {
                uses.insert(used);
            }
        }
    }
    graph
}

fn collect(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// Files of modules declared `#[cfg(test)] mod NAME;`.
fn test_only_files(files: &[std::path::PathBuf]) -> BTreeSet<std::path::PathBuf> {
    let mut found = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(file).expect("readable");
        let parent = file.parent().expect("a parent");
        let dir = match file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
        {
            "mod" | "lib" => parent.to_path_buf(),
            stem => parent.join(stem),
        };
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.windows(2) {
            if pair[0].trim() == "#[cfg(test)]"
                && let Some(name) = pair[1]
                    .trim()
                    .trim_start_matches("pub ")
                    .strip_prefix("mod ")
                    .and_then(|m| m.strip_suffix(';'))
            {
                found.insert(dir.join(format!("{name}.rs")));
            }
        }
    }
    found
}

/// The top-level modules named by `crate::x` paths, `use crate::{x, y}` groups included.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        if code[..at].ends_with('$') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for part in group.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `crate::fail!` is the error module's macro.
            found.insert(if name == "fail" { "error".into() } else { name });
        }
    }
    found
}

/// A cycle through `from`, as the path that closes it.
fn cycle(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    if let Some(start) = path.iter().position(|m| m == from) {
        let mut found = path[start..].to_vec();
        found.push(from.to_string());
        return Some(found);
    }
    path.push(from.to_string());
    for next in graph.get(from).into_iter().flatten() {
        if let Some(found) = cycle(graph, next, path) {
            return Some(found);
        }
    }
    path.pop();
    None
}

#[test]
fn the_top_level_modules_form_no_cycle() {
    let graph = graph();
    assert!(graph.len() > 10, "found too few modules: {graph:?}");
    for module in graph.keys() {
        if let Some(found) = cycle(&graph, module, &mut Vec::new()) {
            panic!("module cycle: {}", found.join(" → "));
        }
    }
}

#[test]
fn leaf_modules_depend_on_nothing_in_the_crate() {
    let graph = graph();
    for leaf in LEAVES {
        let uses = graph
            .get(*leaf)
            .unwrap_or_else(|| panic!("no module {leaf}"));
        assert!(uses.is_empty(), "{leaf} uses {uses:?}");
    }
}

#[test]
fn no_stage_imports_the_command_line_types() {
    let graph = graph();
    let importers: Vec<&String> = graph
        .iter()
        .filter(|(module, uses)| *module != "cli" && uses.contains("cli"))
        .map(|(module, _)| module)
        .collect();
    assert!(importers.is_empty(), "{importers:?} import cli");
}

#[test]
fn the_checker_sees_paths_and_groups() {
    let found =
        crate_paths("use crate::a::b;\nuse crate::{c, d::e};\nx = crate::f::g();\n$crate::h");
    assert_eq!(found.into_iter().collect::<Vec<_>>(), ["a", "c", "d", "f"]);
}

#[test]
fn a_cycle_is_found_and_named() {
    let graph: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(from, to)| (from.to_string(), BTreeSet::from([to.to_string()])))
        .collect();
    let found = cycle(&graph, "a", &mut Vec::new()).unwrap();
    assert_eq!(found, ["a", "b", "c", "a"]);
}
