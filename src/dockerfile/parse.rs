//! Syntax: Dockerfile text → [`Dockerfile`], a list of [`Node`]s that keep their line [`Span`]s.
//!
//! - [`parse`], [`parse_bytes`]: read parser directives (`# syntax=`,
//!   `# escape=`, `# check=`), join continuation lines with the active escape
//!   character (skipping comment and blank lines inside a continuation) and
//!   collect heredoc bodies.
//! - `LineGrammar`: the pest grammar in `grammar/dockerfile.pest`, which
//!   splits each logical line into keyword, flags and arguments (JSON exec
//!   form or shell form, per keyword).
//! - [`Dockerfile::dump`]: the tree in the format of BuildKit's parser test
//!   cases.
//!
//! It knows nothing of what an instruction means: unknown keywords and flags
//! pass through to `dockerfile::instructions`.

use std::fmt::Write as _;

use pest::Parser as _;
use pest::iterators::Pair;
use serde::Serialize;

pub use crate::diagnostic::Span;

use super::Diagnostic;
use super::heredoc::heredocs_in_line;
pub use super::quote::go_quote;

/// The pest grammar for one logical line (`grammar/dockerfile.pest`); the
/// generated parser and its `Rule` enum stay private to the front end.
mod grammar {
    #[derive(pest_derive::Parser)]
    #[grammar = "../grammar/dockerfile.pest"]
    pub(in crate::dockerfile) struct LineGrammar;
}

pub(super) use grammar::{LineGrammar, Rule};

/// A parser directive from the top of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directive {
    /// Lowercased name: `syntax`, `escape` or `check`.
    pub name: String,
    /// The text after `=`, without the blanks around it.
    pub value: String,
    /// The 1-based line the directive is on.
    pub line: usize,
}

/// Something suspicious that is not an error (Docker warns about the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// What is suspicious, worded as Docker words it.
    pub message: String,
    /// The 1-based line it is reported at: the last line of the continuation.
    pub line: usize,
}

/// A heredoc attached to a RUN, COPY or ADD line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The terminator word, unquoted.
    pub name: String,
    /// The file descriptor written before `<<` (`3<<EOF`), 0 when absent.
    pub fd: u32,
    /// False when any part of the terminator was quoted: no expansion.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body and the terminator.
    pub chomp: bool,
    /// The body, every line with its line ending, tabs not yet stripped.
    pub content: String,
}

/// Whether the arguments were written as a JSON array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    /// A JSON array of strings: `["sh", "-c", "make"]`.
    Exec,
    /// Anything that is not a JSON array; RUN, CMD and ENTRYPOINT run it
    /// through the stage's shell.
    Shell,
}

/// One instruction as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// Lowercased keyword (`run`); unknown keywords are kept too.
    pub keyword: String,
    /// Flags as written before the arguments, quotes and escapes removed.
    pub flags: Vec<String>,
    /// The arguments as the keyword's rule splits them (see the README).
    pub args: Vec<String>,
    /// For keywords that accept JSON form, which one was used.
    pub form: Option<Form>,
    /// ONBUILD's trigger instruction.
    pub trigger: Option<Box<Node>>,
    /// The heredocs the line opens, in order, with their bodies (for
    /// ONBUILD, those its trigger opens).
    pub heredocs: Vec<Heredoc>,
    /// The logical line after continuations were joined.
    pub original: String,
    /// The lines the instruction covers, continuations and heredoc bodies
    /// included.
    pub span: Span,
    /// 1-based column (in characters) where `original` starts on its first line.
    pub column: usize,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dockerfile {
    /// The parser directives at the top of the file, in order.
    pub directives: Vec<Directive>,
    /// The escape character in force: `\` or `` ` ``.
    pub escape: char,
    /// The instructions in file order; never empty.
    #[serde(rename = "instructions")]
    pub nodes: Vec<Node>,
    /// What Docker would warn about, in file order.
    pub warnings: Vec<Warning>,
}

const MAX_ONBUILD_DEPTH: usize = 16;
// Go's decoder allows 10000 levels; a PEG recursing that deep could exhaust
// the stack, so deeper arrays are treated as not JSON (shell form).
const MAX_JSON_DEPTH: usize = 100;

/// Parses Dockerfile bytes; invalid UTF-8 is replaced with U+FFFD.
pub fn parse_bytes(src: &[u8]) -> Result<Dockerfile, Diagnostic> {
    parse(&String::from_utf8_lossy(src))
}

/// Parses a Dockerfile.
pub fn parse(src: &str) -> Result<Dockerfile, Diagnostic> {
    let mut lines = PhysicalLines { rest: src };
    let mut directives = DirectiveState::default();
    let mut escape = '\\';
    let mut current_line = 0usize;
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();

    while let Some(raw) = lines.next() {
        let raw = if current_line == 0 { raw.strip_prefix('\u{FEFF}').unwrap_or(raw) } else { raw };
        let untrimmed = trim_newline(raw);
        let text = untrimmed.trim_start();
        let column = untrimmed[..untrimmed.len() - text.len()].chars().count() + 1;
        if let Some(directive) = directives.check(text, current_line + 1)?
            && directive.name == "escape"
        {
            escape = match directive.value.as_str() {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(Diagnostic::at_line(
                        format!("invalid escape token '{other}' does not match ` or \\"),
                        current_line + 1,
                    )
                    .with_hint("write `# escape=\\` or `# escape=``"));
                }
            };
        }
        let content = if is_comment(text) { "" } else { text };
        current_line += 1;
        let start_line = current_line;

        let (first, mut end_of_line) = trim_continuation(content, escape);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut line = String::from(first);
        let mut empty_continuation = false;
        while !end_of_line {
            let Some(raw) = lines.next() else { break };
            current_line += 1;
            if is_comment(raw) {
                continue;
            }
            let text = trim_newline(raw);
            if text.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, eol) = trim_continuation(text, escape);
            line.push_str(part);
            end_of_line = eol;
        }
        if empty_continuation {
            warnings.push(Warning {
                message: format!("empty continuation line found in: {line}"),
                line: current_line,
            });
        }

        let mut node = node_from_line(&line, escape, column, 0)
            .map_err(|e| e.into_error(start_line, current_line, column, &line))?;

        if node.can_contain_heredoc() && line.contains("<<") {
            for mut heredoc in heredocs_in_line(&line) {
                let mut terminated = false;
                for raw in lines.by_ref() {
                    current_line += 1;
                    let candidate = trim_newline(raw);
                    let candidate =
                        if heredoc.chomp { candidate.trim_start_matches('\t') } else { candidate };
                    if candidate == heredoc.name {
                        terminated = true;
                        break;
                    }
                    heredoc.content.push_str(raw);
                }
                if !terminated {
                    return Err(Diagnostic {
                        message: format!(
                            "unterminated heredoc: <<{} opened on line {start_line} is never closed",
                            heredoc.name
                        ),
                        line: start_line,
                        end_line: current_line,
                        column: column + column_of(&line, "<<") - 1,
                        hint: Some(format!(
                            "end the heredoc with a line that is exactly `{}`{}",
                            heredoc.name,
                            if heredoc.chomp { " (leading tabs allowed)" } else { "" }
                        )),
                    });
                }
                node.heredocs.push(heredoc);
            }
        }
        node.span = Span { start: start_line, end: current_line };
        nodes.push(node);
    }

    if nodes.is_empty() {
        return Err(Diagnostic::at_line("file with no instructions", current_line.max(1))
            .with_hint("a Dockerfile needs at least one instruction, starting with FROM"));
    }
    Ok(Dockerfile { directives: directives.parsed, escape, nodes, warnings })
}

impl Dockerfile {
    /// The tree in the format of BuildKit's parser test `result` files
    /// (one `(instruction …)` per line, each line ending in `\n`).
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push('(');
            out.push_str(&node.dump());
            out.push_str(")\n");
        }
        out
    }
}

impl Node {
    /// One instruction in dump format, without the outer parentheses.
    pub fn dump(&self) -> String {
        let mut out = self.keyword.clone();
        if !self.flags.is_empty() {
            out.push_str(" [");
            for (i, flag) in self.flags.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(&go_quote(flag));
            }
            out.push(']');
        }
        if let Some(trigger) = &self.trigger {
            let _ = write!(out, " ({})", trigger.dump());
        }
        for arg in &self.args {
            out.push(' ');
            out.push_str(&go_quote(arg));
        }
        out.trim().to_string()
    }

    fn can_contain_heredoc(&self) -> bool {
        let node = match (&self.keyword[..], &self.trigger) {
            ("onbuild", Some(trigger)) => trigger,
            _ => self,
        };
        matches!(node.keyword.as_str(), "run" | "copy" | "add") && node.form != Some(Form::Exec)
    }
}

/// Splits text into lines that keep their `\n`.
struct PhysicalLines<'a> {
    rest: &'a str,
}

impl<'a> Iterator for PhysicalLines<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let end = self.rest.find('\n').map_or(self.rest.len(), |i| i + 1);
        let (line, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(line)
    }
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// The escape character as the last non-blank character continues the line,
/// unless another escape character precedes it.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    let Some(before) = body.strip_suffix(escape) else {
        return (line, true);
    };
    if before.ends_with(escape) {
        return (line, true);
    }
    (before, false)
}

#[derive(Default)]
struct DirectiveState {
    done: bool,
    parsed: Vec<Directive>,
}

impl DirectiveState {
    fn check(&mut self, line: &str, line_no: usize) -> Result<Option<Directive>, Diagnostic> {
        if self.done {
            return Ok(None);
        }
        let Ok(mut pairs) = LineGrammar::parse(Rule::directive, line) else {
            self.done = true;
            return Ok(None);
        };
        let mut inner = pairs.next().expect("directive rule").into_inner();
        let name = inner.next().expect("directive name").as_str().to_ascii_lowercase();
        let value = inner.next().expect("directive value").as_str().to_string();
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(None);
        }
        if self.parsed.iter().any(|d| d.name == name) {
            return Err(Diagnostic::at_line(
                format!("only one {name} parser directive can be used"),
                line_no,
            )
            .with_hint("remove the repeated directive"));
        }
        let directive = Directive { name, value, line: line_no };
        self.parsed.push(directive.clone());
        Ok(Some(directive))
    }
}

/// An error found inside one logical line, before its lines are known.
pub(crate) struct LineError {
    message: String,
    hint: Option<String>,
    /// Text in the line to put the caret under.
    at: Option<String>,
}

impl LineError {
    fn new(message: impl Into<String>) -> Self {
        LineError { message: message.into(), hint: None, at: None }
    }

    fn into_error(self, start: usize, end: usize, column: usize, line: &str) -> Diagnostic {
        Diagnostic {
            column: column + self.at.as_deref().map_or(1, |at| column_of(line, at)) - 1,
            message: self.message,
            line: start,
            end_line: end,
            hint: self.hint,
        }
    }
}

/// 1-based column of `needle` in `line` (counted in characters), or 1.
pub(crate) fn column_of(line: &str, needle: &str) -> usize {
    line.find(needle).map_or(1, |i| line[..i].chars().count() + 1)
}

fn node_from_line(line: &str, escape: char, column: usize, depth: usize) -> Result<Node, LineError> {
    let trimmed = line.trim();
    let column = column + line[..line.len() - line.trim_start().len()].chars().count();
    let mut pairs = LineGrammar::parse(Rule::instruction, trimmed)
        .map_err(|e| LineError::new(format!("cannot read instruction: {e}")))?;
    let mut keyword = String::new();
    let mut flags = Vec::new();
    let mut rest = "";
    for pair in pairs.next().expect("instruction rule").into_inner() {
        match pair.as_rule() {
            Rule::keyword => keyword = pair.as_str().to_lowercase(),
            Rule::flag => {
                let word = pair.into_inner().next().expect("flag word");
                flags.push(unquote_flag(word.as_str()));
            }
            Rule::arguments => rest = pair.as_str().trim(),
            _ => {}
        }
    }

    let mut node = Node {
        keyword,
        flags,
        args: Vec::new(),
        form: None,
        trigger: None,
        heredocs: Vec::new(),
        original: trimmed.to_string(),
        span: Span { start: 0, end: 0 },
        column,
    };
    match node.keyword.as_str() {
        "from" | "expose" => node.args = split_whitespace(rest),
        "add" | "copy" | "volume" => match parse_json(rest)? {
            Some(args) => {
                node.args = args;
                node.form = Some(Form::Exec);
            }
            None => {
                node.args = split_whitespace(rest);
                node.form = Some(Form::Shell);
            }
        },
        "run" | "cmd" | "entrypoint" | "shell" => maybe_json(&mut node, rest)?,
        "env" | "label" => node.args = parse_name_value(rest, &node.keyword, escape)?,
        "arg" => node.args = parse_words(rest, escape),
        "maintainer" | "user" | "workdir" | "stopsignal" => {
            if !rest.is_empty() {
                node.args = vec![rest.to_string()];
            }
        }
        "healthcheck" => {
            if let Some(sep) = rest.find(|c: char| c.is_ascii_whitespace()) {
                node.args.push(rest[..sep].to_string());
                maybe_json(&mut node, rest[sep..].trim_start())?;
            } else if !rest.is_empty() {
                node.args.push(rest.to_string());
                node.form = Some(Form::Shell);
            }
        }
        "onbuild" => {
            if !rest.is_empty() {
                if depth >= MAX_ONBUILD_DEPTH {
                    return Err(LineError::new("ONBUILD nested too deeply"));
                }
                let offset = column_of(trimmed, rest) - 1;
                node.trigger = Some(Box::new(node_from_line(rest, escape, column + offset, depth + 1)?));
            }
        }
        // Unknown instructions are rejected later, with suggestions; the
        // reference parser keeps them with one empty argument.
        _ => node.args = vec![String::new()],
    }
    Ok(node)
}

fn maybe_json(node: &mut Node, rest: &str) -> Result<(), LineError> {
    if rest.is_empty() {
        node.form = Some(Form::Shell);
        return Ok(());
    }
    match parse_json(rest)? {
        Some(args) => {
            node.args.extend(args);
            node.form = Some(Form::Exec);
        }
        None => {
            node.args.push(rest.to_string());
            node.form = Some(Form::Shell);
        }
    }
    Ok(())
}

/// Removes quotes and backslash escapes from a flag word, as the reference
/// parser does (always `\`, whatever the escape directive says).
fn unquote_flag(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut quote = None;
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => out.push(c),
        }
    }
    out
}

/// Docker splits FROM and EXPOSE (and non-JSON COPY/ADD/VOLUME) on runs of
/// [\t\v\f\r ].
fn split_whitespace(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split(['\t', '\u{0B}', '\u{0C}', '\r', ' ']).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// `Ok(Some(strings))` for a JSON array of strings, `Ok(None)` for text that
/// is not a JSON array, an error for a JSON array with other elements.
fn parse_json(rest: &str) -> Result<Option<Vec<String>>, LineError> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') || json_depth(rest) > MAX_JSON_DEPTH {
        return Ok(None);
    }
    let Ok(mut pairs) = LineGrammar::parse(Rule::json_array, rest) else {
        return Ok(None);
    };
    let list = pairs.next().expect("json_array").into_inner().next().expect("json_list");
    let mut out = Vec::new();
    for element in list.into_inner() {
        match element.as_rule() {
            Rule::json_string => out.push(decode_json_string(element)),
            _ => {
                return Err(LineError {
                    message: "when using JSON array syntax, arrays must be comprised of strings only".into(),
                    hint: Some(format!(
                        "quote `{}` or write the instruction in shell form",
                        element.as_str()
                    )),
                    at: Some(element.as_str().to_string()),
                });
            }
        }
    }
    Ok(Some(out))
}

fn json_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// A JSON string token (quotes included; the grammar has checked its
/// escapes) decoded as Go's `encoding/json` decodes it, which BuildKit uses:
/// an unpaired UTF-16 surrogate becomes U+FFFD where serde_json refuses it.
fn decode_json_string(pair: Pair<'_, Rule>) -> String {
    let text = pair.as_str();
    serde_json::from_str(text)
        .or_else(|_| serde_json::from_str(&lone_surrogates_replaced(text)))
        .unwrap_or_default()
}

/// `text` with every `\uXXXX` escape of a surrogate that is not half of a
/// high-low pair replaced by `\ufffd`.
fn lone_surrogates_replaced(text: &str) -> String {
    let surrogate = |escape: &str, range: std::ops::Range<u32>| {
        escape
            .strip_prefix("\\u")
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .is_some_and(|u| range.contains(&u))
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let escape = rest.get(..6).unwrap_or(rest);
        if surrogate(escape, 0xD800..0xDC00) && surrogate(rest.get(6..12).unwrap_or(""), 0xDC00..0xE000) {
            out.push_str(&rest[..12]);
            rest = &rest[12..];
        } else if surrogate(escape, 0xD800..0xE000) {
            out.push_str("\\ufffd");
            rest = &rest[6..];
        } else {
            let len = 1 + rest[1..].chars().next().map_or(0, char::len_utf8);
            out.push_str(&rest[..len]);
            rest = &rest[len..];
        }
    }
    out.push_str(rest);
    out
}

/// Words for ARG, ENV and LABEL: split on unquoted whitespace, with quotes
/// and escape characters kept in the word.
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut blank_ok = false;
    let mut quote: Option<char> = None;
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            if c == escape && q != '\'' {
                match chars.next() {
                    None => {
                        quote = None;
                        continue;
                    }
                    Some(next) => {
                        word.push(c);
                        word.push(next);
                        continue;
                    }
                }
            }
            word.push(c);
            continue;
        }
        if !in_word {
            if c.is_whitespace() {
                continue;
            }
            in_word = true;
        }
        if c.is_whitespace() {
            if blank_ok || !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            in_word = false;
            blank_ok = false;
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            blank_ok = true;
        }
        if c == escape {
            match chars.next() {
                None => continue,
                Some(next) => {
                    word.push(c);
                    word.push(next);
                    continue;
                }
            }
        }
        word.push(c);
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

fn parse_name_value(rest: &str, keyword: &str, escape: char) -> Result<Vec<String>, LineError> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    let upper = keyword.to_uppercase();
    if !first.contains('=') {
        let mut parts = rest.splitn(2, ['\t', '\u{0B}', '\u{0C}', '\r', ' ']);
        let key = parts.next().unwrap_or_default();
        let value = parts.next().map(|v| v.trim_start_matches(['\t', '\u{0B}', '\u{0C}', '\r', ' ']));
        return match value {
            Some(value) => Ok(vec![key.to_string(), value.to_string(), String::new()]),
            None => Err(LineError {
                message: format!("{upper} must have two arguments"),
                hint: Some(format!("write `{upper} {key}=value` (or `{upper} {key} value`)")),
                at: Some(key.to_string()),
            }),
        };
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for word in &words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(LineError {
                message: format!(
                    "Syntax error - can't find = in {}. Must be of the form: name=value",
                    go_quote(word)
                ),
                hint: Some(format!("write `{word}=value`, or quote the value that contains spaces")),
                at: Some(word.clone()),
            });
        };
        out.extend([key.to_string(), value.to_string(), "=".to_string()]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(src: &str) -> String {
        parse(src).expect("parses").dump()
    }

    #[test]
    fn continuation_keeps_text_before_the_escape() {
        assert_eq!(dump("RUN echo hello  \\\n  world\n"), "(run \"echo hello    world\")\n");
    }

    #[test]
    fn escaped_escape_does_not_continue() {
        let file = parse("RUN echo foo\\\\\nRUN x\n").unwrap();
        assert_eq!(file.nodes.len(), 2);
    }

    #[test]
    fn backtick_directive_switches_continuation() {
        let file = parse("# escape=`\nRUN a `\n b\n").unwrap();
        assert_eq!(file.escape, '`');
        assert_eq!(file.nodes[0].args, vec!["a  b"]);
        assert_eq!(file.nodes[0].span, Span { start: 2, end: 3 });
    }

    #[test]
    fn directive_after_comment_is_a_comment() {
        let file = parse("# hello\n# escape=`\nFROM a\n").unwrap();
        assert_eq!(file.escape, '\\');
        assert!(file.directives.is_empty());
    }

    #[test]
    fn repeated_directive_is_an_error() {
        let err = parse("# syntax=a\n# syntax=b\nFROM a\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("only one syntax"));
    }

    #[test]
    fn invalid_json_falls_back_to_shell_form() {
        assert_eq!(dump("CMD ['a']\n"), "(cmd \"['a']\")\n");
        assert_eq!(parse("CMD ['a']\n").unwrap().nodes[0].form, Some(Form::Shell));
    }

    #[test]
    fn json_with_non_string_is_an_error() {
        let err = parse("FROM a\nCMD [\"a\", 1]\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("strings only"));
    }

    #[test]
    fn json_surrogate_pair_decodes() {
        assert_eq!(dump("CMD [\"\\ud83d\\ude00\"]"), "(cmd \"😀\")\n");
    }

    #[test]
    fn json_lone_surrogates_decode_to_the_replacement_character() {
        assert_eq!(dump("CMD [\"a\\ud83dz\", \"\\ude00\\\\u\"]"), "(cmd \"a\u{fffd}z\" \"\u{fffd}\\\\u\")\n");
    }

    #[test]
    fn heredoc_body_is_consumed_with_line_endings() {
        let file = parse("FROM a\nRUN <<EOF\necho hi\r\nEOF\nRUN b\n").unwrap();
        let run = &file.nodes[1];
        assert_eq!(run.heredocs.len(), 1);
        assert_eq!(run.heredocs[0].content, "echo hi\r\n");
        assert!(run.heredocs[0].expand);
        assert_eq!(run.span, Span { start: 2, end: 4 });
        assert_eq!(file.nodes[2].keyword, "run");
    }

    #[test]
    fn several_heredocs_on_one_line_in_order() {
        let file = parse("FROM a\nCOPY <<A <<-\"B\" /dest\na\nA\n\tb\n\tB\n").unwrap();
        let copy = &file.nodes[1];
        assert_eq!(copy.args, vec!["<<A", "<<-\"B\"", "/dest"]);
        assert_eq!(copy.heredocs[0].name, "A");
        assert_eq!(copy.heredocs[1].name, "B");
        assert!(copy.heredocs[1].chomp);
        assert!(!copy.heredocs[1].expand);
        assert_eq!(copy.heredocs[1].content, "\tb\n");
    }

    #[test]
    fn heredoc_fd_is_read() {
        let file = parse("RUN 3<<EOF cat /proc/self/fd/3\nx\nEOF\n").unwrap();
        assert_eq!(file.nodes[0].heredocs[0].fd, 3);
    }

    #[test]
    fn unterminated_heredoc_names_delimiter_and_line() {
        let err = parse("FROM a\nRUN <<END\necho\n").unwrap_err();
        assert!(err.message.contains("<<END"), "{}", err.message);
        assert!(err.message.contains("line 2"), "{}", err.message);
    }

    #[test]
    fn exec_form_run_has_no_heredoc() {
        let file = parse("RUN [\"<<EOF\"]\nRUN b\n").unwrap();
        assert_eq!(file.nodes.len(), 2);
    }

    #[test]
    fn onbuild_heredoc_is_collected() {
        let file = parse("ONBUILD RUN <<EOF\nx\nEOF\n").unwrap();
        assert_eq!(file.nodes[0].heredocs.len(), 1);
    }

    #[test]
    fn go_quote_escapes_like_go() {
        assert_eq!(go_quote("a\"b\\c\u{0}\u{7f}♥\u{a0}"), "\"a\\\"b\\\\c\\x00\\x7f♥\\u00a0\"");
    }

    #[test]
    fn flags_remove_quotes() {
        let file = parse("COPY --chown=\"a b\" --x='c' -- d e\n").unwrap();
        assert_eq!(file.nodes[0].flags, vec!["--chown=a b", "--x=c"]);
        assert_eq!(file.nodes[0].args, vec!["d", "e"]);
    }

    #[test]
    fn empty_continuation_line_warns() {
        let file = parse("RUN a \\\n\n b\n").unwrap();
        assert_eq!(file.warnings.len(), 1);
    }

    #[test]
    fn bom_is_stripped() {
        assert_eq!(dump("\u{FEFF}FROM a\n"), "(from \"a\")\n");
    }
}
