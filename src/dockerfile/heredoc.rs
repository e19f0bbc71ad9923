//! Heredocs on a RUN, COPY or ADD line: which `<<WORD`s open one.
//!
//! - `heredocs_in_line`: the heredocs a line opens, in order, each marked
//!   expanded or not (`<<"EOF"` is not) and chomped or not (`<<-EOF`); their
//!   bodies are read by the parser.

use pest::Parser as _;

use super::parse::{Heredoc, LineGrammar, Rule};

/// Heredocs opened on a RUN/COPY/ADD line, in order.
pub(super) fn heredocs_in_line(line: &str) -> Vec<Heredoc> {
    raw_words(line)
        .into_iter()
        .filter_map(|word| {
            let pair = LineGrammar::parse(Rule::heredoc_marker, word).ok()?.next()?;
            let (mut fd, mut chomp, mut rest) = (0u32, false, "");
            for part in pair.into_inner() {
                match part.as_rule() {
                    Rule::heredoc_fd => fd = part.as_str().parse().unwrap_or(0),
                    Rule::heredoc_chomp => chomp = true,
                    Rule::heredoc_word => rest = part.as_str(),
                    _ => {}
                }
            }
            let (name, quoted) = unquote_heredoc_word(rest);
            if name.is_empty() {
                return None;
            }
            Some(Heredoc { name, fd, expand: !quoted, chomp, content: String::new() })
        })
        .collect()
}

/// Splits on unquoted whitespace, keeping quotes and escapes in the words.
fn raw_words(line: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start = None;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('"') | None, '\\') => {
                escaped = true;
                start.get_or_insert(i);
            }
            (Some(_), _) => {}
            (None, '\'' | '"') => {
                quote = Some(c);
                start.get_or_insert(i);
            }
            (None, c) if c.is_whitespace() => {
                if let Some(s) = start.take() {
                    words.push(&line[s..i]);
                }
            }
            (None, _) => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some(s) = start {
        words.push(&line[s..]);
    }
    words
}

/// The terminator word without quotes and escapes, and whether it had quotes.
fn unquote_heredoc_word(word: &str) -> (String, bool) {
    let mut out = String::with_capacity(word.len());
    let mut quoted = false;
    let mut quote = None;
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('\''), c) => out.push(c),
            (_, '\\') => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                quoted = true;
            }
            (_, c) => out.push(c),
        }
    }
    (out, quoted)
}
