//! The Dockerfile front end: text in, typed instructions out, errors at a line.
//!
//! - [`parse()`]: text → a syntax tree of [`parse::Node`]s with line spans.
//! - [`instructions::typed`]: nodes → typed [`instructions::Instruction`]s
//!   with validated flags.
//! - [`shell`]: Docker's word expansion, for the stages after them.
//!
//! Errors carry the line and column they point at and a hint;
//! [`Diagnostic::render`] prints them with the offending line and a caret.

mod flags;
mod heredoc;
pub mod instructions;
pub mod parse;
mod quote;
pub mod shell;
pub use parse::{Dockerfile, Node, parse, parse_bytes};

pub use crate::diagnostic::{Diagnostic, Span};
