//! Shared by each tool's `tests/readme.rs`: the README's synopses of a tool checked against its `--help`.
//! Both ways, for every tool: every flag the README shows for the tool must exist in the help (hidden
//! aliases do not count, so the README uses the current spellings), and every flag of the help but
//! `--help` and `--version` must appear in the README's synopses of that tool. [`check_help`]: the help
//! itself shows an example, the exit codes and the options every tool of this kind takes.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// The README's command lines that run `tool`: from fenced blocks (continuation lines joined) and from
/// inline code spans, with `# comments` removed and `&&`/`|` pipelines split.
pub fn synopses(readme: &str, tool: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut in_block = false;
    let mut fence_indent = 0;
    let mut current: Option<String> = None;
    let indent = |l: &str| l.len() - l.trim_start().len();
    for raw in readme.lines() {
        let line = raw.trim_end();
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            fence_indent = indent(line);
            lines.extend(current.take());
            continue;
        }
        if in_block {
            let text = strip_comment(line);
            // A line indented deeper than the fence continues the command above it.
            let continued = indent(line) > fence_indent && !text.trim().is_empty();
            match current.as_mut() {
                Some(c) if continued || c.ends_with('\\') => {
                    c.push(' ');
                    c.push_str(text.trim());
                }
                _ => {
                    lines.extend(current.take());
                    current = Some(text.trim().to_string());
                }
            }
        } else {
            // inline code spans
            for (k, span) in line.split('`').enumerate() {
                if k % 2 == 1 {
                    lines.push(span.to_string());
                }
            }
        }
    }
    lines.extend(current);
    lines
        .iter()
        .flat_map(|l| l.split("&&").flat_map(|p| p.split(" | ")))
        .map(|p| p.replace('\\', " ").trim().to_string())
        .filter(|p| p.split_whitespace().next() == Some(tool))
        .collect()
}

fn strip_comment(line: &str) -> &str {
    match line.find(" #") {
        Some(i) => &line[..i],
        None if line.trim_start().starts_with('#') => "",
        None => line,
    }
}

/// The flags (`--long` and `-s`) in a piece of text.
pub fn flags(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for token in text.split(|c: char| c.is_whitespace() || "[]|(),=".contains(c)) {
        if let Some(rest) = token.strip_prefix("--") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            if !name.is_empty() {
                out.push(format!("--{name}"));
            }
        } else if token.len() == 2
            && token.starts_with('-')
            && token.as_bytes()[1].is_ascii_alphabetic()
        {
            out.push(token.to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The options that `--help` lists, each with its spellings (`["-m", "--model"]`).
pub fn help_options(help: &str) -> Vec<Vec<String>> {
    help.lines()
        .map(str::trim_start)
        .filter(|t| t.starts_with('-'))
        .map(|t| flags(&t.split("  ").next().unwrap_or(t).replace(['<', '>'], " ")))
        .filter(|f| !f.is_empty())
        .collect()
}

/// Runs `bin --help` and checks the README's synopses of `tool` against it, both ways.
pub fn check(bin: &str, tool: &str) {
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("README.md");
    let out = Command::new(bin).arg("--help").output().expect("runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    let options = help_options(&help);
    let syn = synopses(&readme, tool);
    assert!(!syn.is_empty(), "README.md shows no `{tool}` command");
    let in_readme: Vec<String> = syn.iter().flat_map(|s| flags(s)).collect();
    for f in &in_readme {
        assert!(
            options.iter().flatten().any(|o| o == f),
            "README.md shows `{f}` for {tool}, which its --help does not list:\n{help}"
        );
    }
    for spellings in &options {
        if spellings
            .iter()
            .any(|f| ["--help", "--version"].contains(&f.as_str()))
        {
            continue;
        }
        assert!(
            spellings.iter().any(|f| in_readme.contains(f)),
            "{tool} --help lists `{}`, which no README.md synopsis of {tool} shows",
            spellings.join(", ")
        );
    }
}

/// Runs `bin --help` and checks that it shows an example (`Example:`), the exit codes (`Exit status`)
/// and each of `options` as the help spells it (`"-m, --model"`).
pub fn check_help(bin: &str, options: &[&str]) {
    let out = Command::new(bin).arg("--help").output().expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Example:") && help.contains("Exit status"),
        "{help}"
    );
    for option in options {
        assert!(
            help.contains(option),
            "{option} is not in the help:\n{help}"
        );
    }
}
