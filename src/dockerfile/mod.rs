//! The Dockerfile front end: [`parse()`] turns text into a syntax tree of
//! [`parse::Node`]s with line spans, [`instructions::typed`] turns those into
//! typed [`instructions::Instruction`]s with validated flags, and [`shell`]
//! does Docker's word expansion for the stages after them. Errors carry the
//! line and column they point at and a hint; [`ParseError::render`] prints
//! them with the offending line and a caret.

pub mod instructions;
pub mod parse;
pub mod shell;
pub use parse::{Dockerfile, Node, parse, parse_bytes};

use std::fmt::Write as _;

/// A Dockerfile that cannot be read, with where and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub message: String,
    /// 1-based first line of the offending instruction.
    pub line: usize,
    /// Last line of it (the same as `line` for one-line instructions).
    pub end_line: usize,
    /// 1-based column in the first line, in characters.
    pub column: usize,
    pub hint: Option<String>,
}

impl ParseError {
    pub(crate) fn at(message: impl Into<String>, line: usize) -> Self {
        ParseError { message: message.into(), line, end_line: line, column: 1, hint: None }
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// `file:line:column: error: message`, the offending source line with a
    /// caret under the column, and the hint.
    pub fn render(&self, file: &str, source: &str) -> String {
        let mut out = format!("{file}:{}:{}: error: {}\n", self.line, self.column, self.message);
        if let Some(text) = source.lines().nth(self.line.saturating_sub(1)) {
            let text = text.trim_end_matches('\r');
            let number = self.line.to_string();
            let pad = " ".repeat(number.len());
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{number} | {text}");
            // Tabs before the caret keep it aligned in a terminal.
            let lead: String = text
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = writeln!(out, "{pad} | {lead}^");
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "hint: {hint}");
        }
        out
    }
}
