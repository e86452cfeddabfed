//! The manual's generated pages: the command reference from clap's definition of the command
//! line, the exit codes from `shipit::error::Category`. A test fails when a committed page differs
//! from what the code gives; with `SHIPIT_UPDATE_DOCS=1` it rewrites the page instead, as insta
//! does for snapshots. The last test checks that the book's links lead somewhere.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Arg, Command, CommandFactory};
use shipit::cli::Cli;
use shipit::error::Category;

use crate::support::repo_root;

const UPDATE_VARIABLE: &str = "SHIPIT_UPDATE_DOCS";
const REGENERATE: &str = "SHIPIT_UPDATE_DOCS=1 cargo test --locked --test cli docs";

fn command_pages_match_the_command_line() {
    let mut cli = Cli::command();
    cli.build();
    let dir = book().join("reference/commands");
    let mut pages = vec![(book().join("reference/commands.md"), commands_index(&cli))];
    for command in subcommands(&cli) {
        let path = dir.join(format!("{}.md", command.get_name()));
        pages.push((path, command_page(command)));
    }
    check_generated(&pages, Some(&dir));
}

fn exit_code_page_matches_the_error_categories() {
    let page = exit_code_page();
    check_generated(&[(book().join("reference/exit-codes.md"), page)], None);
}

fn book_links_resolve() {
    let mut files = markdown_files(&book());
    files.extend(["README.md", "CONTRIBUTING.md"].map(|f| repo_root().join(f)));
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for target in links(&text) {
            if let Err(why) = resolve(file, &target) {
                broken.push(format!("{}: ({target}) {why}", shown(file)));
            }
        }
    }
    let summary = book().join("SUMMARY.md");
    let listed: BTreeSet<PathBuf> = links(&std::fs::read_to_string(&summary).unwrap())
        .iter()
        .map(|target| book().join(target))
        .collect();
    for page in markdown_files(&book()) {
        if page != summary && !listed.contains(&page) {
            broken.push(format!("{} is not in SUMMARY.md", shown(&page)));
        }
    }
    assert!(
        broken.is_empty(),
        "the manual's links lead nowhere:\n{}\n  help: mdBook makes a heading's id from its \
         text: lower case, spaces as '-', other punctuation dropped",
        broken.join("\n")
    );
}

fn book() -> PathBuf {
    repo_root().join("docs/src")
}

fn shown(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Comparing and rewriting

/// Compares each page with its file; rewrites the files instead under SHIPIT_UPDATE_DOCS. In
/// `owned`, a directory only generated pages live in, a file no page has (a command that went
/// away) is stale too.
fn check_generated(pages: &[(PathBuf, String)], owned: Option<&Path>) {
    let update = std::env::var_os(UPDATE_VARIABLE).is_some();
    let mut stale = Vec::new();
    for (path, text) in pages {
        if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            } else {
                stale.push(shown(path));
            }
        }
    }
    for path in owned.map(markdown_files).unwrap_or_default() {
        if !pages.iter().any(|(page, _)| *page == path) {
            if update {
                std::fs::remove_file(&path).unwrap();
            } else {
                stale.push(format!("{} (no such command)", shown(&path)));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "generated pages of the manual differ from the code: {}\n  help: run `{REGENERATE}` to \
         rewrite them, then check the diff and commit it",
        stale.join(", ")
    );
}

fn generated_from(source: &str) -> String {
    format!(
        "<!-- Generated from {source} by tests/cli/docs.rs: do not edit. After changing the \
         source, run `{REGENERATE}`. -->\n\n"
    )
}

// ---------------------------------------------------------------------------------------------
// The command reference

fn commands_index(cli: &Command) -> String {
    let mut page = generated_from("src/cli.rs");
    page.push_str("# Commands\n\n");
    paragraphs(&mut page, cli.get_long_about().or(cli.get_about()));
    usage(&mut page, cli);
    page.push_str("| Command | What it does |\n|---|---|\n");
    for command in subcommands(cli) {
        let about = command.get_about().map(|a| prose(&a.to_string()));
        let _ = writeln!(
            page,
            "| [`{}`](commands/{}.md) | {} |",
            bin_name(command),
            command.get_name(),
            about.unwrap_or_default().replace('|', "\\|")
        );
    }
    page.push_str("\n## Global options\n\nEvery command takes these.\n\n");
    for arg in cli.get_arguments().filter(|a| a.is_global_set()) {
        argument(&mut page, arg);
    }
    page.push('\n');
    after_help(&mut page, cli);
    page.truncate(page.trim_end().len());
    page.push('\n');
    page
}

fn command_page(command: &Command) -> String {
    let mut page = generated_from("src/cli.rs");
    let _ = writeln!(page, "# `{}`\n", bin_name(command));
    describe(&mut page, command, 2);
    for sub in subcommands(command) {
        let _ = writeln!(page, "## `{}`\n", bin_name(sub));
        describe(&mut page, sub, 3);
    }
    page.push_str("The [global options](../commands.md#global-options) apply too.\n");
    page
}

fn describe(page: &mut String, command: &Command, level: usize) {
    let heading = "#".repeat(level);
    paragraphs(page, command.get_long_about().or(command.get_about()));
    usage(page, command);
    let subs = subcommands(command);
    if !subs.is_empty() {
        for sub in &subs {
            let about = sub.get_about().map(|a| prose(&a.to_string()));
            let _ = writeln!(
                page,
                "- [`{}`](#{}): {}",
                sub.get_name(),
                bin_name(sub).replace(' ', "-"),
                about.unwrap_or_default()
            );
        }
        page.push('\n');
    }
    let (positionals, options): (Vec<&Arg>, Vec<&Arg>) = command
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_global_set() && !is_builtin(a))
        .partition(|a| a.is_positional());
    for (title, args) in [("Arguments", positionals), ("Options", options)] {
        if !args.is_empty() {
            let _ = writeln!(page, "{heading} {title}\n");
            for arg in args {
                argument(page, arg);
            }
            page.push('\n');
        }
    }
    after_help(page, command);
}

fn argument(page: &mut String, arg: &Arg) {
    let _ = write!(page, "- `{}`", term(arg));
    if let Some(help) = arg.get_long_help().or(arg.get_help()) {
        let _ = write!(page, ": {}", prose(&help.to_string()));
    }
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| format!("`{}`", v.to_string_lossy()))
        .collect();
    let flag = !arg.get_action().takes_values();
    if !defaults.is_empty() && !flag && !arg.is_hide_default_value_set() {
        let _ = write!(page, " (default: {})", defaults.join(", "));
    }
    let values: Vec<String> = if flag {
        Vec::new()
    } else {
        arg.get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| format!("`{}`", v.get_name()))
            .collect()
    };
    if !values.is_empty() {
        let _ = write!(page, "; one of {}", values.join(", "));
    }
    page.push('\n');
}

/// How the argument is written: `-n, --lines <N>`, `--json`, `[HOST]...`.
fn term(arg: &Arg) -> String {
    match arg.get_short() {
        Some(short) if arg.get_long().is_some() => format!("-{short}, {arg}"),
        _ => arg.to_string(),
    }
}

fn usage(page: &mut String, command: &Command) {
    let usage = command.clone().render_usage().to_string();
    let usage = usage.trim().trim_start_matches("Usage: ");
    let _ = writeln!(page, "**Usage:** `{usage}`\n");
}

/// The notes after the options. A paragraph whose lines after the first are indented (a title
/// and its examples) keeps that layout, as code; the others are prose.
fn after_help(page: &mut String, command: &Command) {
    let Some(text) = command.get_after_long_help().or(command.get_after_help()) else {
        return;
    };
    for paragraph in text.to_string().trim_end().split("\n\n") {
        let (first, rest) = paragraph.split_once('\n').unwrap_or((paragraph, ""));
        let _ = writeln!(page, "{}\n", prose(first));
        if !rest.is_empty() {
            let lines: Vec<&str> = rest.lines().map(str::trim_start).collect();
            let _ = writeln!(page, "```text\n{}\n```\n", lines.join("\n"));
        }
    }
}

fn paragraphs(page: &mut String, text: Option<&clap::builder::StyledStr>) {
    if let Some(text) = text {
        for paragraph in text.to_string().split("\n\n") {
            let _ = writeln!(page, "{}\n", prose(paragraph.trim()));
        }
    }
}

fn subcommands(command: &Command) -> Vec<&Command> {
    command
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .collect()
}

fn bin_name(command: &Command) -> &str {
    command.get_bin_name().unwrap_or(command.get_name())
}

/// clap's own --help and --version, which every command has.
fn is_builtin(arg: &Arg) -> bool {
    ["help", "version"].contains(&arg.get_id().as_str())
}

/// Help text as Markdown: its backtick spans stay code; everything else is shown as written, so
/// `<app>` is not taken for an HTML tag nor `*` for emphasis.
fn prose(text: &str) -> String {
    let balanced = text.matches('`').count() % 2 == 0;
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i > 0 {
            out.push_str(if balanced { "`" } else { "\\`" });
        }
        if balanced && i % 2 == 1 {
            out.push_str(part);
            continue;
        }
        for c in part.chars() {
            match c {
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '&' => out.push_str("&amp;"),
                '*' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                c => out.push(c),
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The exit codes

fn exit_code_page() -> String {
    let mut page = generated_from("src/error.rs");
    page.push_str(
        "# Exit codes\n\n\
         shipit's exit code says how a command ended, so a script or CI job can tell a failed \
         build from an unreachable host or a release that was rolled back. `shipit exec` on one \
         host exits with the command's own status instead (see \
         [Running commands](../guides/exec-logs-history.md#output-and-exit-status)); its own \
         failures keep these codes. A deploy exits 0 only when every host runs the new release \
         and passed its health gate (and, with `--confirm-timeout`, was confirmed): a failure \
         that `--max-fail` tolerated or a host skipped because the rollout stopped still ends \
         non-zero, and `--json` says `\"ok\": false` (see [In CI](../guides/ci.md#exit-codes)). A \
         fleet deploy exits with the most severe host's code (see \
         [Fleets](../guides/fleets.md)).\n\n\
         | Code | Meaning |\n|---|---|\n\
         | 0 | success |\n",
    );
    let _ = writeln!(
        page,
        "| {} | internal error (a bug: please report it) |",
        shipit::error::EXIT_INTERNAL
    );
    for category in Category::ALL {
        let _ = writeln!(
            page,
            "| {} | {} |",
            category.exit_code(),
            category.meaning().replace('|', "\\|")
        );
    }
    page
}

// ---------------------------------------------------------------------------------------------
// Links

fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(markdown_files(&path));
        } else if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The targets of inline links `[text](target)` outside code, other than web addresses.
fn links(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in &prose_lines(text) {
        let mut rest = line.as_str();
        while let Some(start) = rest.find("](") {
            rest = &rest[start + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = &rest[..end];
            if !target.contains("://") && !target.starts_with("mailto:") {
                targets.push(target.to_string());
            }
            rest = &rest[end..];
        }
    }
    targets
}

/// Lines outside fenced code blocks, with inline code spans removed.
fn prose_lines(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            let outside: String = line.split('`').step_by(2).collect();
            lines.push(outside);
        }
    }
    lines
}

fn resolve(from: &Path, target: &str) -> Result<(), String> {
    let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
    let file = if path.is_empty() {
        from.to_path_buf()
    } else {
        from.parent().unwrap().join(path)
    };
    if !file.exists() {
        return Err(format!("{} does not exist", file.display()));
    }
    if anchor.is_empty() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
    if heading_ids(&text).contains(anchor) {
        Ok(())
    } else {
        Err(format!("no heading has the id {anchor:?}"))
    }
}

/// The ids mdBook gives the headings: lower case, spaces as '-', other punctuation dropped, and
/// `-1`, `-2`, … after a repeated one.
fn heading_ids(text: &str) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        let Some(title) = line.strip_prefix('#').filter(|_| !fenced) else {
            continue;
        };
        let title = title.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        let id: String = title
            .trim()
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c),
                c if c.is_whitespace() => Some('-'),
                _ => None,
            })
            .collect();
        let unique = (0..)
            .map(|n| {
                if n == 0 {
                    id.clone()
                } else {
                    format!("{id}-{n}")
                }
            })
            .find(|candidate| !ids.contains(candidate))
            .unwrap();
        ids.insert(unique);
    }
    ids
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(Nothing, 0, command_pages_match_the_command_line),
        crate::test!(Nothing, 0, exit_code_page_matches_the_error_categories),
        crate::test!(Nothing, 0, book_links_resolve),
    ]
}
