//! Errors that point into a Dockerfile, rendered the same way for every stage.
//!
//! - [`Span`]: the lines of the source an instruction covers.
//! - [`Diagnostic`]: a message at a line and column, with an optional hint;
//!   parse, plan and solve errors all become one.
//! - [`Diagnostic::render`]: `file:line:column: error: …`, the line itself,
//!   a caret under the column and the hint — the only place errors are drawn.

use std::fmt::Write as _;

use serde::Serialize;

/// Lines of the source a node covers, 1-based and inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    /// The first line.
    pub start: usize,
    /// The last line (the same as `start` for a one-line instruction).
    pub end: usize,
}

/// Something wrong with a Dockerfile (or with what it asks for), with where
/// and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct Diagnostic {
    /// What is wrong, in one sentence.
    pub message: String,
    /// 1-based first line of the offending instruction.
    pub line: usize,
    /// Last line of it (the same as `line` for one-line instructions).
    pub end_line: usize,
    /// 1-based column in the first line, in characters.
    pub column: usize,
    /// What the user can do about it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A message at column 1 of `line`.
    pub fn at_line(message: impl Into<String>, line: usize) -> Diagnostic {
        Diagnostic { message: message.into(), line, end_line: line, column: 1, hint: None }
    }

    /// A message about the instruction that covers `span`.
    pub fn at(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic { message: message.into(), line: span.start, end_line: span.end, column: 1, hint: None }
    }

    /// The same diagnostic with a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// The lines the diagnostic points at.
    pub fn span(&self) -> Span {
        Span { start: self.line, end: self.end_line }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_shows_the_line_a_caret_and_the_hint() {
        let diagnostic = Diagnostic { column: 3, ..Diagnostic::at_line("unknown instruction: RUNN", 2) }
            .with_hint("did you mean RUN?");
        let text = diagnostic.render("Dockerfile", "FROM x\n  RUNN echo hi\n");
        assert_eq!(
            text,
            "Dockerfile:2:3: error: unknown instruction: RUNN\n  |\n2 |   RUNN echo hi\n  |   ^\nhint: did you mean RUN?\n"
        );
    }

    #[test]
    fn render_without_the_line_keeps_message_and_hint() {
        let diagnostic = Diagnostic::at(Span { start: 9, end: 9 }, "gone").with_hint("look");
        assert_eq!(diagnostic.render("f", "one line\n"), "f:9:1: error: gone\nhint: look\n");
    }
}
