//! Glob patterns shared by `.dockerignore` and COPY/ADD sources, in two dialects.
//!
//! - A pattern is compiled once into tokens and matched by backtracking over
//!   `&str`.
//! - COPY sources use Go's `filepath.Match`, one path component at a time.
//! - `.dockerignore` uses moby/patternmatcher, which translates the pattern to
//!   a regular expression in which `**` crosses directories and a bracket
//!   class is a regex class (so it may match `/`).
//! - Both accept only patterns that `filepath.Match` accepts, because
//!   patternmatcher validates with it before translating.

use std::fmt;

/// Why a pattern is malformed; the text says what Go's `ErrBadPattern` hides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// The malformed pattern (or path component) as given.
    pub pattern: String,
    /// What is wrong with it, e.g. `unterminated character class`.
    pub reason: &'static str,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "syntax error in pattern {:?}: {}", self.pattern, self.reason)
    }
}

impl std::error::Error for PatternError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Literal(String),
    /// `?`: one character other than `/`.
    AnyChar,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**` followed by more pattern: nothing, or anything ending in `/`.
    AnyDirs,
    /// `**` at the end after a wildcard: anything at all.
    AnyTail,
    Class(Class),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Class {
    negated: bool,
    ranges: Vec<(char, char)>,
    /// `filepath.Match` never lets a class match the separator; a regex class does.
    matches_slash: bool,
}

impl Class {
    fn matches(&self, c: char) -> bool {
        if c == '/' && !self.matches_slash {
            return false;
        }
        let inside = self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
        inside != self.negated
    }
}

/// Parses the class body after `[`; returns the class and the rest of the
/// pattern after `]`. The rules are `filepath.Match`'s: `-` and `]` must be
/// escaped as range ends, and the class must be closed. An inverted range is
/// also an error, as it is for the regex patternmatcher builds from it.
fn parse_class<'a>(
    pattern: &str,
    body: &'a str,
    matches_slash: bool,
) -> Result<(Class, &'a str), PatternError> {
    let bad = |reason| PatternError { pattern: pattern.to_string(), reason };
    let mut rest = body;
    let mut negated = false;
    if let Some(r) = rest.strip_prefix('^') {
        negated = true;
        rest = r;
    }
    let mut ranges = Vec::new();
    loop {
        if let Some(r) = rest.strip_prefix(']')
            && !ranges.is_empty()
        {
            return Ok((Class { negated, ranges, matches_slash }, r));
        }
        let (lo, r) = class_char(rest).map_err(bad)?;
        rest = r;
        let mut hi = lo;
        if let Some(r) = rest.strip_prefix('-') {
            let (h, r) = class_char(r).map_err(bad)?;
            hi = h;
            rest = r;
        }
        if lo > hi {
            return Err(bad("inverted character range"));
        }
        ranges.push((lo, hi));
    }
}

fn class_char(s: &str) -> Result<(char, &str), &'static str> {
    let mut chars = s.chars();
    match chars.next() {
        None => Err("unterminated character class"),
        Some('-') => Err("unescaped '-' in character class"),
        Some(']') => Err("unescaped ']' in character class"),
        Some('\\') => match chars.next() {
            None => Err("unterminated character class"),
            Some(c) => Ok((c, chars.as_str())),
        },
        Some(c) => Ok((c, chars.as_str())),
    }
}

fn push_literal(tokens: &mut Vec<Token>, c: char) {
    if let Some(Token::Literal(s)) = tokens.last_mut() {
        s.push(c);
    } else {
        tokens.push(Token::Literal(c.to_string()));
    }
}

/// How patternmatcher decides to match a cleaned pattern: literal patterns
/// compare as strings, `prefix/**` and `**suffix` without other wildcards as
/// prefix/suffix tests; everything else through the token matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MatchKind {
    Exact,
    Prefix,
    Suffix,
    Tokens,
}

/// A compiled `.dockerignore` pattern (without its `!`).
#[derive(Debug, Clone)]
pub(crate) struct IgnoreGlob {
    pub(crate) text: String,
    kind: MatchKind,
    tokens: Vec<Token>,
}

impl IgnoreGlob {
    pub(crate) fn compile(text: &str) -> Result<IgnoreGlob, PatternError> {
        let mut tokens = Vec::new();
        let mut kind = MatchKind::Exact;
        let mut rest = text;
        let mut first = true;
        while let Some(c) = rest.chars().next() {
            rest = &rest[c.len_utf8()..];
            match c {
                '*' if rest.starts_with('*') => {
                    rest = &rest[1..];
                    // `**/` behaves as `**`: the slash is part of "any directories".
                    if let Some(r) = rest.strip_prefix('/') {
                        rest = r;
                    }
                    if rest.is_empty() {
                        if kind == MatchKind::Exact {
                            kind = MatchKind::Prefix;
                        } else {
                            tokens.push(Token::AnyTail);
                            kind = MatchKind::Tokens;
                        }
                    } else {
                        tokens.push(Token::AnyDirs);
                        kind = MatchKind::Tokens;
                    }
                    if first {
                        kind = MatchKind::Suffix;
                    }
                }
                '*' => {
                    tokens.push(Token::Star);
                    kind = MatchKind::Tokens;
                }
                '?' => {
                    tokens.push(Token::AnyChar);
                    kind = MatchKind::Tokens;
                }
                '\\' => {
                    let Some(next) = rest.chars().next() else {
                        return Err(PatternError { pattern: text.to_string(), reason: "trailing backslash" });
                    };
                    rest = &rest[next.len_utf8()..];
                    push_literal(&mut tokens, next);
                    kind = MatchKind::Tokens;
                }
                '[' => {
                    let (class, r) = parse_class(text, rest, true)?;
                    rest = r;
                    tokens.push(Token::Class(class));
                    kind = MatchKind::Tokens;
                }
                c => push_literal(&mut tokens, c),
            }
            first = false;
        }
        Ok(IgnoreGlob { text: text.to_string(), kind, tokens })
    }

    pub(crate) fn matches(&self, path: &str) -> bool {
        match self.kind {
            MatchKind::Exact => path == self.text,
            MatchKind::Prefix => path.starts_with(&self.text[..self.text.len() - 2]),
            MatchKind::Suffix => {
                let suffix = &self.text[2..];
                path.ends_with(suffix) || suffix.strip_prefix('/').is_some_and(|s| path == s)
            }
            MatchKind::Tokens => match_tokens(&self.tokens, path),
        }
    }

    /// Whether this pattern might match something strictly below `dir`
    /// (conservatively true when unsure). Used to decide whether an excluded
    /// directory must still be walked for `!` exceptions.
    pub(crate) fn may_match_below(&self, dir: &str) -> bool {
        if self.text.contains("**") {
            return true;
        }
        let mut pattern_parts = self.text.split('/');
        for dir_part in dir.split('/') {
            let Some(part) = pattern_parts.next() else { return false };
            match ComponentGlob::compile_dockerignore_part(part) {
                Some(glob) if !glob.matches(dir_part) => return false,
                _ => {}
            }
        }
        pattern_parts.next().is_some()
    }
}

/// One path component of a COPY source (`filepath.Match` syntax).
#[derive(Debug, Clone)]
pub(crate) struct ComponentGlob {
    tokens: Vec<Token>,
}

impl ComponentGlob {
    pub(crate) fn compile(text: &str) -> Result<ComponentGlob, PatternError> {
        let mut tokens = Vec::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            rest = &rest[c.len_utf8()..];
            match c {
                '*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' => tokens.push(Token::AnyChar),
                '\\' => {
                    let Some(next) = rest.chars().next() else {
                        return Err(PatternError { pattern: text.to_string(), reason: "trailing backslash" });
                    };
                    rest = &rest[next.len_utf8()..];
                    push_literal(&mut tokens, next);
                }
                '[' => {
                    let (class, r) = parse_class(text, rest, false)?;
                    rest = r;
                    tokens.push(Token::Class(class));
                }
                c => push_literal(&mut tokens, c),
            }
        }
        Ok(ComponentGlob { tokens })
    }

    /// A best-effort per-component view of a `.dockerignore` pattern part;
    /// `None` when it cannot be judged alone.
    fn compile_dockerignore_part(part: &str) -> Option<ComponentGlob> {
        ComponentGlob::compile(part).ok()
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        match_tokens(&self.tokens, name)
    }
}

/// Whether `text` has an unescaped `*`, `?` or `[`, as BuildKit decides
/// whether a COPY source is a wildcard.
pub(crate) fn has_wildcard(text: &str) -> bool {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

fn match_tokens(tokens: &[Token], s: &str) -> bool {
    let Some((token, rest)) = tokens.split_first() else {
        return s.is_empty();
    };
    match token {
        Token::Literal(lit) => s.strip_prefix(lit.as_str()).is_some_and(|s| match_tokens(rest, s)),
        Token::AnyChar => {
            let mut chars = s.chars();
            matches!(chars.next(), Some(c) if c != '/') && match_tokens(rest, chars.as_str())
        }
        Token::Class(class) => {
            let mut chars = s.chars();
            matches!(chars.next(), Some(c) if class.matches(c)) && match_tokens(rest, chars.as_str())
        }
        Token::Star => {
            let limit = s.find('/').unwrap_or(s.len());
            if rest.is_empty() {
                return limit == s.len();
            }
            boundaries(s, limit).any(|i| match_tokens(rest, &s[i..]))
        }
        Token::AnyDirs => {
            match_tokens(rest, s) || s.match_indices('/').any(|(i, _)| match_tokens(rest, &s[i + 1..]))
        }
        Token::AnyTail => rest.is_empty() || boundaries(s, s.len()).any(|i| match_tokens(rest, &s[i..])),
    }
}

/// Char boundaries of `s` from 0 to `limit` inclusive.
fn boundaries(s: &str, limit: usize) -> impl Iterator<Item = usize> + '_ {
    s[..limit].char_indices().map(|(i, _)| i).chain(std::iter::once(limit))
}
