//! Docker's word expansion, as BuildKit's `shell.Lex` does it; nothing here runs a shell.
//!
//! - [`ShellLexer`]: the escape character (`\` or `` ` ``, from the
//!   Dockerfile's `escape` directive) and two modes: `raw_quotes` keeps quote
//!   characters in the output, `skip_unset` leaves references to unset
//!   variables as written.
//! - [`ShellLexer::process_word`]: one word, not split ([`Expansion`]).
//! - [`ShellLexer::process_words`]: expanded, then split on unquoted
//!   whitespace ([`WordsExpansion`]).
//! - [`Env`]: where variables come from: an ordered list of `(name, value)`
//!   pairs where the last one wins, or a map.
//! - [`ExpandError`]: BuildKit's message and the byte offset of the construct
//!   at fault.
//!
//! It handles quotes, escapes and `$V`, `${V}`, `${V:-w}`, `${V-w}`,
//! `${V:+w}`, `${V+w}`, `${V:?m}`, `${V?m}`, `${V#p}`, `${V##p}`, `${V%p}`,
//! `${V%%p}`, `${V/p/r}` and `${V//p/r}`. Both calls report every name they
//! looked up, set or not, so the planner can tell which build args a step
//! depends on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::hash::BuildHasher;

/// How deeply `${…}` may nest inside each other. BuildKit has no limit (Go
/// stacks grow); ours is fixed, so hostile input gets an error instead of a
/// stack overflow. Real Dockerfiles nest two or three levels.
const MAX_NESTING: usize = 64;

/// Expands Dockerfile words the way BuildKit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShellLexer {
    /// The escape character: `\` by default, `` ` `` under `# escape=``.
    pub escape: char,
    /// Keep `'` and `"` in the output (BuildKit's `RawQuotes`).
    pub raw_quotes: bool,
    /// Leave `$V`, `${V}` and `${V<op>…}` of unset variables as written
    /// (BuildKit's `SkipUnsetEnv`).
    pub skip_unset: bool,
    /// Take `'` and `"` as ordinary characters (BuildKit's
    /// `SkipProcessQuotes`, for the bodies of heredocs).
    pub skip_quotes: bool,
}

/// Where variables are looked up.
pub trait Env {
    /// The value of `name`, or `None` when it is unset. Set-but-empty is
    /// `Some("")`, which `${V-w}` and `${V:-w}` tell apart.
    fn lookup(&self, name: &str) -> Option<&str>;
}

/// The result of [`ShellLexer::process_word`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The expanded word.
    pub value: String,
    /// Every variable name looked up, set or unset.
    pub used: BTreeSet<String>,
}

/// The result of [`ShellLexer::process_words`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordsExpansion {
    /// The words after expansion and splitting; empty words are dropped.
    pub words: Vec<String>,
    /// Every variable name looked up, set or unset.
    pub used: BTreeSet<String>,
}

/// Why a word could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    /// BuildKit's wording, e.g. `syntax error: bad substitution`.
    pub message: String,
    /// Byte offset in the input of the construct at fault: the opening quote
    /// of an unterminated string, the `$` of a bad substitution, the operator
    /// of an unsupported modifier.
    pub offset: usize,
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExpandError {}

impl Default for ShellLexer {
    fn default() -> Self {
        Self::new('\\')
    }
}

impl ShellLexer {
    /// A lexer with the given escape character and both modes off.
    pub fn new(escape: char) -> Self {
        ShellLexer { escape, raw_quotes: false, skip_unset: false, skip_quotes: false }
    }

    /// One word: quotes removed, escapes processed, variables expanded, no
    /// splitting.
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<Expansion, ExpandError> {
        let mut scan = Scan::new(self, word, env);
        let value = scan.expand_until(None, false, &mut Words::discard())?;
        Ok(Expansion { value, used: scan.used })
    }

    /// Several words: expand, then split on unquoted whitespace (text from
    /// unquoted variables is split too).
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<WordsExpansion, ExpandError> {
        let mut scan = Scan::new(self, word, env);
        let mut words = Words::collect();
        scan.expand_until(None, false, &mut words)?;
        Ok(WordsExpansion { words: words.finish(), used: scan.used })
    }
}

// Docker's env is an ordered list in which a later assignment of a name
// overrides an earlier one, hence the reverse search.
impl Env for [(String, String)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl Env for [(&str, &str)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter().rev().find(|(k, _)| *k == name).map(|&(_, v)| v)
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

impl Env for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

impl<S: BuildHasher> Env for HashMap<String, String, S> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

// Lets unsized environments (slices) be passed as `&dyn Env` via `&&[…]`.
impl<T: Env + ?Sized> Env for &T {
    fn lookup(&self, name: &str) -> Option<&str> {
        (**self).lookup(name)
    }
}

/// Word splitting as BuildKit does it alongside expansion: characters that
/// came from quotes or escapes never split, characters from the source or
/// from an unquoted variable split on whitespace, and empty words vanish
/// (so `a "" b` is two words).
struct Words {
    done: Vec<String>,
    current: String,
    enabled: bool,
}

impl Words {
    fn collect() -> Self {
        Words { done: Vec::new(), current: String::new(), enabled: true }
    }

    /// Nested `${…}` words and single-word processing need no splitting.
    fn discard() -> Self {
        Words { enabled: false, ..Words::collect() }
    }

    fn push_splitting(&mut self, ch: char) {
        if !self.enabled {
            return;
        }
        // Go's unicode.IsSpace and Rust's char::is_whitespace both follow
        // the Unicode White_Space property.
        if ch.is_whitespace() {
            if !self.current.is_empty() {
                self.done.push(std::mem::take(&mut self.current));
            }
        } else {
            self.current.push(ch);
        }
    }

    fn push_str_splitting(&mut self, s: &str) {
        if self.enabled {
            s.chars().for_each(|ch| self.push_splitting(ch));
        }
    }

    fn push_literal(&mut self, ch: char) {
        if self.enabled {
            self.current.push(ch);
        }
    }

    fn push_str_literal(&mut self, s: &str) {
        if self.enabled {
            self.current.push_str(s);
        }
    }

    fn finish(mut self) -> Vec<String> {
        if !self.current.is_empty() {
            self.done.push(self.current);
        }
        self.done
    }
}

/// One expansion in progress: a cursor over the input plus what it has
/// looked up so far.
struct Scan<'a> {
    lexer: &'a ShellLexer,
    src: &'a str,
    pos: usize,
    env: &'a dyn Env,
    used: BTreeSet<String>,
    nesting: usize,
}

fn error_at(offset: usize, message: impl Into<String>) -> ExpandError {
    ExpandError { message: message.into(), offset }
}

impl<'a> Scan<'a> {
    fn new(lexer: &'a ShellLexer, src: &'a str, env: &'a dyn Env) -> Self {
        // BuildKit reads the word through Go's text/scanner, which drops a
        // byte-order mark at the very start of its input.
        let pos = if src.starts_with('\u{FEFF}') { '\u{FEFF}'.len_utf8() } else { 0 };
        Scan { lexer, src, pos, env, used: BTreeSet::new(), nesting: 0 }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.pos += ch.len_utf8();
        Some(ch)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn lookup(&mut self, name: &str) -> Option<&'a str> {
        if !self.used.contains(name) {
            self.used.insert(name.to_owned());
        }
        self.env.lookup(name)
    }

    /// Expands up to `stop` (consumed) or the end of input. `raw_escapes`
    /// keeps escape characters in the output; BuildKit turns it on for
    /// patterns and replacements so that `\*` still means a literal star
    /// when the pattern is compiled.
    fn expand_until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
        words: &mut Words,
    ) -> Result<String, ExpandError> {
        let mut out = String::new();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += ch.len_utf8();
                return Ok(out);
            }
            match ch {
                '$' => {
                    let value = self.dollar()?;
                    words.push_str_splitting(&value);
                    out.push_str(&value);
                }
                '\'' | '"' if self.lexer.skip_quotes => {
                    self.pos += 1;
                    words.push_splitting(ch);
                    out.push(ch);
                }
                '\'' => {
                    let value = self.single_quoted()?;
                    words.push_str_literal(&value);
                    out.push_str(&value);
                }
                '"' => {
                    let value = self.double_quoted(raw_escapes)?;
                    words.push_str_literal(&value);
                    out.push_str(&value);
                }
                _ => {
                    self.pos += ch.len_utf8();
                    if ch != self.lexer.escape {
                        words.push_splitting(ch);
                        out.push(ch);
                        continue;
                    }
                    if raw_escapes {
                        words.push_literal(ch);
                        out.push(ch);
                    }
                    // A trailing escape is dropped, not an error: the parser
                    // has already used escapes at line ends for continuations.
                    let Some(escaped) = self.bump() else { break };
                    words.push_literal(escaped);
                    out.push(escaped);
                }
            }
        }
        match stop {
            // Callers replace this with their own message (see `nested`).
            Some(stop) => Err(error_at(
                self.src.len(),
                format!("unexpected end of statement while looking for matching {stop}"),
            )),
            None => Ok(out),
        }
    }

    fn single_quoted(&mut self) -> Result<String, ExpandError> {
        let open = self.pos;
        let body_start = open + 1;
        let Some(len) = self.src[body_start..].find('\'') else {
            // Consumed to the end, as BuildKit does: an enclosing `${…}`
            // then reports its own missing terminator instead.
            self.pos = self.src.len();
            return Err(error_at(
                open,
                "unexpected end of statement while looking for matching single-quote",
            ));
        };
        let body = &self.src[body_start..body_start + len];
        self.pos = body_start + len + 1;
        Ok(if self.lexer.raw_quotes { format!("'{body}'") } else { body.to_owned() })
    }

    /// Inside double quotes the escape character only escapes `"`, `$` and
    /// itself; before anything else it stays.
    fn double_quoted(&mut self, raw_escapes: bool) -> Result<String, ExpandError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        if self.lexer.raw_quotes {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => {
                    return Err(error_at(
                        open,
                        "unexpected end of statement while looking for matching double-quote",
                    ));
                }
                Some('"') => {
                    self.pos += 1;
                    if self.lexer.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let value = self.dollar()?;
                    out.push_str(&value);
                }
                Some(ch) => {
                    self.pos += ch.len_utf8();
                    let mut ch = ch;
                    if ch == self.lexer.escape {
                        if raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            // Nothing to escape; the loop reports the
                            // missing quote.
                            None => continue,
                            Some(next) if next == '"' || next == '$' || next == self.lexer.escape => {
                                self.pos += next.len_utf8();
                                ch = next;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    /// A variable reference, the cursor on its `$`.
    fn dollar(&mut self) -> Result<String, ExpandError> {
        let start = self.pos;
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.lookup(name) {
                Some(value) => value.to_owned(),
                None if self.lexer.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1;
        if self.nesting == MAX_NESTING {
            return Err(error_at(
                start,
                format!("syntax error: substitutions nested more than {MAX_NESTING} deep"),
            ));
        }
        self.nesting += 1;
        let result = self.braced(start);
        self.nesting -= 1;
        result
    }

    /// `${…}`, the cursor just past the `{`.
    fn braced(&mut self, start: usize) -> Result<String, ExpandError> {
        match self.peek() {
            None => return Err(missing_brace(start)),
            Some('{' | '}' | ':') => {
                return Err(error_at(start, "syntax error: bad substitution"));
            }
            Some(_) => {}
        }
        let name = self.name();
        let op_at = self.pos;
        // BuildKit reports end of input here as an unsupported modifier
        // (U+FFFD, its EOF rune printed); the missing brace is the real fault.
        let Some(op) = self.bump() else {
            return Err(missing_brace(start));
        };
        match op {
            '}' => Ok(match self.lookup(name) {
                Some(value) => value.to_owned(),
                None if self.lexer.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '-' | '+' | '?' | '#' | '%' => self.modifier(start, name, op, op_at),
            '/' => self.substitution(start, name),
            _ => Err(error_at(op_at, format!("unsupported modifier ({op}) in substitution"))),
        }
    }

    /// `${V<op>word}` for the default, alternative, error and trim
    /// operators, each with or without `:`.
    fn modifier(
        &mut self,
        start: usize,
        name: &'a str,
        first: char,
        op_at: usize,
    ) -> Result<String, ExpandError> {
        let colon = first == ':';
        let op = if colon {
            match self.bump() {
                Some(op) => op,
                None => return Err(missing_brace(start)),
            }
        } else {
            first
        };
        // Like BuildKit, the word is read before the operator is checked,
        // so `${V:x…}` fails only after its closing brace is found, and
        // `skip_unset` passes an unknown operator on an unset name through.
        let pattern_at = self.pos;
        let word = self.nested('}', op == '#' || op == '%', start, "syntax error: missing '}'")?;
        let value = self.lookup(name);
        let written_colon = if colon { ":" } else { "" };
        if value.is_none() && self.lexer.skip_unset {
            return Ok(format!("${{{name}{written_colon}{op}{word}}}"));
        }
        // With `:`, set-but-empty counts as unset.
        let present = value.filter(|v| !colon || !v.is_empty());
        match op {
            '-' => Ok(present.map_or(word, str::to_owned)),
            '+' => Ok(present.map_or_else(String::new, |_| word)),
            '?' => match (value, present) {
                (_, Some(value)) => Ok(value.to_owned()),
                (unset_or_empty, None) => {
                    let message = if !word.is_empty() {
                        word.as_str()
                    } else if unset_or_empty.is_none() {
                        "is not allowed to be unset"
                    } else {
                        "is not allowed to be empty"
                    };
                    Err(error_at(start, format!("{name}: {message}")))
                }
            },
            '#' | '%' => {
                let value = value.unwrap_or("");
                let (longest, pattern) = match word.strip_prefix(op) {
                    Some(rest) => (true, rest),
                    None => (false, word.as_str()),
                };
                let trimmed = if op == '#' {
                    pattern::trim_prefix(pattern, value, longest).map(str::to_owned)
                } else {
                    pattern::trim_suffix(pattern, value, longest)
                };
                trimmed.map_err(|e| {
                    error_at(pattern_at, format!("invalid pattern ({pattern}) in substitution: {e}"))
                })
            }
            _ => Err(error_at(op_at, format!("unsupported modifier ({written_colon}{op}) in substitution"))),
        }
    }

    /// `${V/pattern/replacement}` and `${V//pattern/replacement}`; unlike
    /// bash the second `/` is required.
    fn substitution(&mut self, start: usize, name: &'a str) -> Result<String, ExpandError> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let pattern_at = self.pos;
        let pattern = self.nested('/', true, start, "syntax error: missing '/' in ${}")?;
        let replacement = self.nested('}', true, start, "syntax error: missing '}'")?;
        let value = self.lookup(name);
        if value.is_none() && self.lexer.skip_unset {
            // BuildKit writes a single `/` back here even for `//`, which
            // turns replace-all into replace-first when the text is expanded
            // again; we keep what was written.
            let slashes = if all { "//" } else { "/" };
            return Ok(format!("${{{name}{slashes}{pattern}/{replacement}}}"));
        }
        self.replace(all, &pattern, pattern_at, value.unwrap_or(""), &replacement)
    }

    fn replace(
        &self,
        all: bool,
        pattern: &str,
        pattern_at: usize,
        value: &str,
        replacement: &str,
    ) -> Result<String, ExpandError> {
        let glob = pattern::Glob::compile(pattern, true)
            .map_err(|e| error_at(pattern_at, format!("invalid pattern ({pattern}) in substitution: {e}")))?;
        Ok(if all { glob.replace_all(value, replacement) } else { glob.replace_first(value, replacement) })
    }

    /// Expands a word nested in `${…}`. Any failure that leaves the cursor
    /// at the end of input is reported as the construct's missing
    /// terminator, the way BuildKit words it.
    fn nested(
        &mut self,
        stop: char,
        raw_escapes: bool,
        start: usize,
        at_end_message: &str,
    ) -> Result<String, ExpandError> {
        let result = self.expand_until(Some(stop), raw_escapes, &mut Words::discard());
        result.map_err(|e| if self.at_end() { error_at(start, at_end_message) } else { e })
    }

    /// A parameter name: a run of digits (positional, never set), one
    /// special character (`$@`, `$#`, … never set), or letters, digits and
    /// `_`. Letters and digits are Unicode ones, as in Go.
    fn name(&mut self) -> &'a str {
        let src = self.src;
        let start = self.pos;
        let rest = &src[start..];
        let len = match rest.chars().next() {
            None => 0,
            Some(c) if go_unicode::is_digit(c) => {
                rest.find(|c: char| !go_unicode::is_digit(c)).unwrap_or(rest.len())
            }
            Some(c @ ('@' | '*' | '#' | '?' | '-' | '$' | '!')) => c.len_utf8(),
            Some(_) => rest
                .find(|c: char| !(go_unicode::is_letter(c) || go_unicode::is_digit(c) || c == '_'))
                .unwrap_or(rest.len()),
        };
        self.pos += len;
        &src[start..start + len]
    }
}

fn missing_brace(start: usize) -> ExpandError {
    error_at(start, "syntax error: missing '}'")
}

mod pattern;

mod go_unicode;

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        [("A", "a"), ("EMPTY", ""), ("PATH_", "/usr/bin:/bin"), ("FILE", "archive.tar.gz")]
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn word(input: &str) -> String {
        ShellLexer::new('\\').process_word(input, &env()).unwrap_or_else(|e| panic!("{input:?}: {e}")).value
    }

    fn word_with(name: &str, value: &str, input: &str) -> String {
        let env = [(name, value)];
        ShellLexer::new('\\').process_word(input, &env).unwrap_or_else(|e| panic!("{input:?}: {e}")).value
    }

    #[test]
    fn backtick_escape_escapes_dollar_and_quotes() {
        let lexer = ShellLexer::new('`');
        let out = lexer.process_word("a`$A`\"b`'c", &env()).unwrap();
        assert_eq!(out.value, "a$A\"b'c");
    }

    #[test]
    fn backtick_escape_leaves_backslash_literal() {
        let lexer = ShellLexer::new('`');
        let out = lexer.process_word("C:\\dir\\$A \"C:\\x`\"\"", &env()).unwrap();
        assert_eq!(out.value, "C:\\dir\\a C:\\x\"");
    }

    #[test]
    fn backtick_escape_in_double_quotes_escapes_only_quote_dollar_and_itself() {
        let lexer = ShellLexer::new('`');
        let out = lexer.process_word("\"`$A ``  `t\"", &env()).unwrap();
        assert_eq!(out.value, "$A `  `t");
    }

    #[test]
    fn raw_quotes_keeps_quote_characters() {
        let lexer = ShellLexer { raw_quotes: true, ..ShellLexer::new('\\') };
        let out = lexer.process_word("'$A b'\"$A c\"", &env()).unwrap();
        assert_eq!(out.value, "'$A b'\"a c\"");
    }

    #[test]
    fn raw_quotes_keeps_quotes_inside_split_words() {
        let lexer = ShellLexer { raw_quotes: true, ..ShellLexer::new('\\') };
        let out = lexer.process_words("x \"a b\" ''", &env()).unwrap();
        assert_eq!(out.words, ["x", "\"a b\"", "''"]);
    }

    #[test]
    fn skip_quotes_takes_quotes_as_characters() {
        let lexer = ShellLexer { skip_quotes: true, ..ShellLexer::new('\\') };
        let env = [("A", "x")];
        assert_eq!(lexer.process_word("'$A' \"$A\" \\$A", &env).unwrap().value, "'x' \"x\" $A");
    }

    #[test]
    fn skip_unset_leaves_unset_references_as_written() {
        let lexer = ShellLexer { skip_unset: true, ..ShellLexer::new('\\') };
        let out = lexer.process_word("$NOPE ${NOPE} ${NOPE:-x} ${NOPE#p} ${NOPE//a/b} $A", &env()).unwrap();
        assert_eq!(out.value, "$NOPE ${NOPE} ${NOPE:-x} ${NOPE#p} ${NOPE//a/b} a");
    }

    #[test]
    fn skip_unset_still_expands_set_but_empty_variables() {
        let lexer = ShellLexer { skip_unset: true, ..ShellLexer::new('\\') };
        let out = lexer.process_word("[$EMPTY${EMPTY:-d}]", &env()).unwrap();
        assert_eq!(out.value, "[d]");
    }

    #[test]
    fn skip_unset_does_not_fail_on_unset_required_variable() {
        let lexer = ShellLexer { skip_unset: true, ..ShellLexer::new('\\') };
        let out = lexer.process_word("${NOPE:?must be set}", &env()).unwrap();
        assert_eq!(out.value, "${NOPE:?must be set}");
    }

    #[test]
    fn used_lists_set_and_unset_names() {
        let out = ShellLexer::new('\\').process_word("$A ${NOPE} ${EMPTY:-x}", &env()).unwrap();
        let used: Vec<&str> = out.used.iter().map(String::as_str).collect();
        assert_eq!(used, ["A", "EMPTY", "NOPE"]);
    }

    #[test]
    fn used_includes_names_in_words_that_were_not_needed() {
        let out = ShellLexer::new('\\').process_word("${A:-$DEFAULT}${NOPE:+$ALT}", &env()).unwrap();
        assert_eq!(out.value, "a");
        assert!(out.used.contains("DEFAULT") && out.used.contains("ALT"));
    }

    #[test]
    fn used_ignores_quoted_and_escaped_references() {
        let out = ShellLexer::new('\\').process_words("'$Q' \\$E \"\\$D\" $A", &env()).unwrap();
        let used: Vec<&str> = out.used.iter().map(String::as_str).collect();
        assert_eq!(used, ["A"]);
    }

    #[test]
    fn used_includes_positional_and_special_parameters() {
        let out = ShellLexer::new('\\').process_word("$1$@", &env()).unwrap();
        assert_eq!(out.value, "");
        assert!(out.used.contains("1") && out.used.contains("@"));
    }

    #[test]
    fn later_assignment_in_list_wins() {
        let env = [("V", "first"), ("V", "second")];
        let out = ShellLexer::new('\\').process_word("$V", &env).unwrap();
        assert_eq!(out.value, "second");
    }

    #[test]
    fn replace_first_with_star() {
        assert_eq!(word("${PATH_/:*/}"), "/usr/bin");
    }

    #[test]
    fn replace_first_star_is_greedy() {
        assert_eq!(word_with("V", "a-b-c", "${V/-*/+}"), "a+");
    }

    #[test]
    fn replace_first_with_question_mark() {
        assert_eq!(word_with("V", "a1b2", "${V/b?/x}"), "a1x");
    }

    #[test]
    fn replace_all_with_question_mark() {
        assert_eq!(word_with("V", "amd64 arm64", "${V//?64/X}"), "amX arX");
    }

    #[test]
    fn replace_all_literal() {
        assert_eq!(word_with("V", "arm64-arm64", "${V//arm64/aarch64}"), "aarch64-aarch64");
    }

    #[test]
    fn replace_all_with_star_takes_longest_leftmost_match() {
        assert_eq!(word_with("V", "a.b.c", "${V//.*/!}"), "a!");
    }

    #[test]
    fn replace_all_empty_pattern_changes_nothing() {
        assert_eq!(word_with("V", "xxyy", "${V///}"), "xxyy");
    }

    #[test]
    fn replace_first_empty_pattern_inserts_at_start() {
        let env = [("V", "xxyy"), ("E", "")];
        let out = ShellLexer::new('\\').process_word("${V/$E/ww}", &env).unwrap();
        assert_eq!(out.value, "wwxxyy");
    }

    #[test]
    fn replace_pattern_brackets_are_literal() {
        assert_eq!(word_with("V", "a[0-9]b", "${V/[0-9]/N}"), "aNb");
        assert_eq!(word_with("V", "a5b", "${V/[0-9]/N}"), "a5b");
        assert_eq!(word_with("V", "[x][x]", "${V//[x]/y}"), "yy");
    }

    #[test]
    fn replace_escaped_slash_in_pattern_and_replacement() {
        assert_eq!(word_with("V", "/tmp/foo.txt", "${V//\\//\\/}"), "\\/tmp\\/foo.txt");
    }

    #[test]
    fn replace_all_expands_go_template_in_replacement() {
        let env = [("V", "foo"), ("R", "<$0>$$")];
        let out = ShellLexer::new('\\').process_word("${V//o/$R}", &env).unwrap();
        assert_eq!(out.value, "f<o>$<o>$");
    }

    #[test]
    fn replace_first_inserts_replacement_verbatim() {
        let env = [("V", "foo"), ("R", "<$0>")];
        let out = ShellLexer::new('\\').process_word("${V/o/$R}", &env).unwrap();
        assert_eq!(out.value, "f<$0>o");
    }

    #[test]
    fn trim_shortest_prefix_with_star() {
        assert_eq!(word("${FILE#*.}"), "tar.gz");
    }

    #[test]
    fn trim_longest_prefix_with_star() {
        assert_eq!(word("${FILE##*.}"), "gz");
    }

    #[test]
    fn trim_shortest_suffix_with_star() {
        assert_eq!(word("${FILE%.*}"), "archive.tar");
    }

    #[test]
    fn trim_longest_suffix_with_star() {
        assert_eq!(word("${FILE%%.*}"), "archive");
    }

    #[test]
    fn trim_prefix_with_question_marks_counts_characters() {
        assert_eq!(word_with("V", "한국어x", "${V#??}"), "어x");
    }

    #[test]
    fn trim_suffix_with_question_mark() {
        assert_eq!(word_with("V", "v1.2.3", "${V%.?}"), "v1.2");
        assert_eq!(word_with("V", "v1.2.3", "${V%%.?}"), "v1.2");
    }

    #[test]
    fn trim_pattern_brackets_are_literal() {
        assert_eq!(word_with("V", "[ab]c", "${V#[ab]}"), "c");
        assert_eq!(word_with("V", "ac", "${V#[ab]}"), "ac");
        assert_eq!(word_with("V", "c[ab]", "${V%[ab]}"), "c");
    }

    #[test]
    fn trim_pattern_escaped_star_is_literal() {
        assert_eq!(word_with("V", "xx**", "${V%%\\**}"), "xx");
        assert_eq!(word_with("V", "a***yy*", "${V%%\\**\\*}"), "a");
    }

    #[test]
    fn trim_without_match_keeps_value() {
        assert_eq!(word("${FILE#zip}"), "archive.tar.gz");
        assert_eq!(word("${FILE%zip}"), "archive.tar.gz");
    }

    #[test]
    fn trim_of_unset_variable_is_empty() {
        assert_eq!(word("${NOPE##*}"), "");
    }

    #[test]
    fn star_does_not_match_newline() {
        assert_eq!(word_with("V", "a\nb", "${V##*}"), "\nb");
    }

    #[test]
    fn invalid_pattern_escape_is_an_error() {
        let err = ShellLexer::new('\\').process_word("${A#\\x}", &env()).unwrap_err();
        assert!(err.message.starts_with("invalid pattern"), "{err}");
        assert_eq!(err.offset, 4);
    }

    #[test]
    fn unterminated_double_quote_points_at_the_quote() {
        let err = ShellLexer::new('\\').process_word("ab\"cd", &env()).unwrap_err();
        assert_eq!(err.message, "unexpected end of statement while looking for matching double-quote");
        assert_eq!(err.offset, 2);
    }

    #[test]
    fn required_variable_error_names_it() {
        let err = ShellLexer::new('\\').process_word("x${NOPE?}", &env()).unwrap_err();
        assert_eq!(err.message, "NOPE: is not allowed to be unset");
        assert_eq!(err.offset, 1);
        let err = ShellLexer::new('\\').process_word("${EMPTY:?}", &env()).unwrap_err();
        assert_eq!(err.message, "EMPTY: is not allowed to be empty");
    }

    #[test]
    fn unknown_operator_is_an_error() {
        let err = ShellLexer::new('\\').process_word("${A:=x}", &env()).unwrap_err();
        assert_eq!(err.message, "unsupported modifier (:=) in substitution");
    }

    #[test]
    fn leading_byte_order_mark_is_dropped() {
        assert_eq!(word("\u{FEFF}$A"), "a");
        assert_eq!(word("x\u{FEFF}"), "x\u{FEFF}");
    }

    #[test]
    fn name_ends_where_go_letters_end() {
        // `²` is a number but not a decimal digit; a combining vowel sign is
        // alphabetic but not a letter.
        assert_eq!(word_with("A", "v", "$A²"), "v²");
        assert_eq!(word_with("क", "v", "$क\u{093E}"), "v\u{093E}");
        assert_eq!(word_with("한국어", "v", "$한국어!"), "v!");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let depth = 100_000;
        let input = format!("{}x{}", "${A:-".repeat(depth), "}".repeat(depth));
        let err = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || ShellLexer::new('\\').process_word(&input, &env()))
            .unwrap()
            .join()
            .unwrap()
            .unwrap_err();
        assert!(err.message.contains("nested"), "{err}");
    }

    #[test]
    fn nesting_up_to_the_limit_works() {
        let input = format!("{}x{}", "${NOPE:-".repeat(MAX_NESTING), "}".repeat(MAX_NESTING));
        assert_eq!(word(&input), "x");
    }

    #[test]
    fn long_input_expands_in_linear_time() {
        let input = "$A${FILE%%.*}\"${PATH_//:/ }\"".repeat(20_000);
        let start = std::time::Instant::now();
        let out = ShellLexer::new('\\').process_words(&input, &env()).unwrap();
        assert_eq!(out.words.len(), 1);
        assert!(start.elapsed().as_secs() < 5);
    }

    /// xorshift64*, enough to shuffle an alphabet deterministically.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    #[test]
    fn random_input_never_panics() {
        const ALPHABET: &[&str] = &[
            "$", "$", "$", "{", "{", "}", "}", ":", "-", "+", "?", "#", "%", "/", "/", "\\", "\\", "'", "\"",
            "`", "a", "Z", "9", "0", " ", "\n", "*", "[", "]", "A", "EMPTY", "한", "é", "🚀", "\u{FEFF}",
            "\u{0300}", "²", "@", "!",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let env = env();
        for round in 0..4000 {
            let len = (rng.next() % 40) as usize;
            let input: String =
                (0..len).map(|_| ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize]).collect();
            let lexer = ShellLexer {
                escape: if round % 3 == 0 { '`' } else { '\\' },
                raw_quotes: round % 5 == 0,
                skip_unset: round % 7 == 0,
                skip_quotes: round % 11 == 0,
            };
            if let Err(e) = lexer.process_word(&input, &env) {
                assert!(e.offset <= input.len(), "{input:?}: {e:?}");
            }
            let _ = lexer.process_words(&input, &env);
        }
    }
}
