//! Docker's word expansion, as BuildKit's `shell.Lex` does it: quotes,
//! escapes and `$V`, `${V}`, `${V:-w}`, `${V-w}`, `${V:+w}`, `${V+w}`,
//! `${V:?m}`, `${V?m}`, `${V#p}`, `${V##p}`, `${V%p}`, `${V%%p}`, `${V/p/r}`
//! and `${V//p/r}`. Nothing here runs a shell. A [`ShellLexer`] holds the
//! escape character (`\` or `` ` ``, from the Dockerfile's `escape`
//! directive) and two modes: `raw_quotes` keeps quote characters in the
//! output and `skip_unset` leaves references to unset variables as written.
//! [`ShellLexer::process_word`] expands one word without splitting it
//! ([`Expansion`]); [`ShellLexer::process_words`] expands and then splits on
//! unquoted whitespace ([`WordsExpansion`]). Variables come from any [`Env`]:
//! an ordered list of `(name, value)` pairs where the last one wins, or a
//! map. Both calls report every name they looked up, set or not, so the
//! planner can tell which build args a step depends on. A failure is an
//! [`ExpandError`] with BuildKit's message and the byte offset of the
//! construct at fault.

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
        ShellLexer { escape, raw_quotes: false, skip_unset: false }
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

/// BuildKit's shell patterns. It turns a pattern into a Go regular
/// expression: `*` is `.*` (`.*?` for the shortest-match `#` and `%`), `?`
/// is `.`, `\` escapes only `*`, `?` and `\` (and is dropped before `}` and
/// `/`), and everything else, `[` and `]` included, is literal: bracket
/// expressions are not supported. Go's `.` does not match a newline, so
/// neither do `*` and `?` here. Matching follows Go's leftmost-first rules
/// on a Pike VM, in time linear in the value for a given pattern.
mod pattern {
    #[derive(Debug, Clone, Copy)]
    enum Inst {
        Char(char),
        AnyButNewline,
        /// Try the first target, then the second.
        Split(usize, usize),
        Jump(usize),
        Match,
    }

    pub(super) struct Glob {
        prog: Vec<Inst>,
    }

    impl Glob {
        /// `greedy` makes `*` prefer the longest match.
        pub(super) fn compile(pattern: &str, greedy: bool) -> Result<Glob, String> {
            // Go's text/scanner, which BuildKit reads the pattern with,
            // drops a leading byte-order mark.
            let pattern = pattern.strip_prefix('\u{FEFF}').unwrap_or(pattern);
            let mut prog = Vec::with_capacity(pattern.len() + 1);
            let mut chars = pattern.chars().peekable();
            while let Some(ch) = chars.next() {
                match ch {
                    '*' => {
                        let here = prog.len();
                        let (body, next) = (here + 1, here + 3);
                        prog.push(if greedy { Inst::Split(body, next) } else { Inst::Split(next, body) });
                        prog.push(Inst::AnyButNewline);
                        prog.push(Inst::Jump(here));
                    }
                    '?' => prog.push(Inst::AnyButNewline),
                    '\\' => match chars.peek().copied() {
                        // `\}` and `\/` keep the delimiter out of `${…}`;
                        // the backslash is not part of the pattern.
                        Some('}' | '/') => {}
                        Some(escaped @ ('*' | '?' | '\\')) => {
                            chars.next();
                            prog.push(Inst::Char(escaped));
                        }
                        Some(other) => return Err(format!("invalid escape '\\{other}'")),
                        None => return Err("invalid escape '\\' at end of pattern".to_owned()),
                    },
                    _ => prog.push(Inst::Char(ch)),
                }
            }
            prog.push(Inst::Match);
            Ok(Glob { prog })
        }

        /// The leftmost match starting at or after `from` (exactly at
        /// `from` when `anchored`), as byte offsets.
        fn find_at(&self, hay: &str, from: usize, anchored: bool) -> Option<(usize, usize)> {
            let mut seen = vec![0usize; self.prog.len()];
            let mut generation = 1;
            let mut stack = Vec::new();
            // Threads as (instruction, match start), highest priority first.
            let mut current: Vec<(usize, usize)> = Vec::new();
            let mut next: Vec<(usize, usize)> = Vec::new();
            let mut found = None;
            let mut pos = from;
            loop {
                if found.is_none() && (!anchored || pos == from) {
                    self.add_thread(&mut current, &mut seen, generation, &mut stack, 0, pos);
                }
                if current.is_empty() && (found.is_some() || anchored) {
                    break;
                }
                let ch = hay[pos..].chars().next();
                generation += 1;
                for &(pc, start) in &current {
                    let advances = match self.prog[pc] {
                        Inst::Match => {
                            // Lower-priority threads can no longer win.
                            found = Some((start, pos));
                            break;
                        }
                        Inst::Char(want) => ch == Some(want),
                        Inst::AnyButNewline => ch.is_some_and(|c| c != '\n'),
                        Inst::Split(..) | Inst::Jump(_) => false,
                    };
                    if advances {
                        self.add_thread(&mut next, &mut seen, generation, &mut stack, pc + 1, start);
                    }
                }
                std::mem::swap(&mut current, &mut next);
                next.clear();
                match ch {
                    Some(c) => pos += c.len_utf8(),
                    None => break,
                }
            }
            found
        }

        /// Follows splits and jumps from `pc` in priority order, with an
        /// explicit stack because a run of `*` chains splits.
        fn add_thread(
            &self,
            list: &mut Vec<(usize, usize)>,
            seen: &mut [usize],
            generation: usize,
            stack: &mut Vec<usize>,
            pc: usize,
            start: usize,
        ) {
            stack.push(pc);
            while let Some(pc) = stack.pop() {
                if seen[pc] == generation {
                    continue;
                }
                seen[pc] = generation;
                match self.prog[pc] {
                    Inst::Split(first, second) => {
                        stack.push(second);
                        stack.push(first);
                    }
                    Inst::Jump(target) => stack.push(target),
                    Inst::Char(_) | Inst::AnyButNewline | Inst::Match => list.push((pc, start)),
                }
            }
        }

        /// `${V/p/r}`: the replacement is inserted as is.
        pub(super) fn replace_first(&self, value: &str, replacement: &str) -> String {
            match self.find_at(value, 0, false) {
                Some((start, end)) => [&value[..start], replacement, &value[end..]].concat(),
                None => value.to_owned(),
            }
        }

        /// `${V//p/r}` as Go's `Regexp.ReplaceAllString`, which BuildKit
        /// uses: an empty match right after a match is not replaced, and
        /// the replacement is a Go template (`$0` is the match).
        pub(super) fn replace_all(&self, value: &str, template: &str) -> String {
            let mut out = String::with_capacity(value.len());
            let mut last_end = 0;
            let mut search = 0;
            while search <= value.len() {
                let Some((start, end)) = self.find_at(value, search, false) else {
                    break;
                };
                out.push_str(&value[last_end..start]);
                if end > last_end || start == 0 {
                    expand_template(&mut out, template, &value[start..end]);
                }
                last_end = end;
                let width = value[search..].chars().next().map_or(0, char::len_utf8);
                search = if search + width > end {
                    search + width
                } else if search + 1 > end {
                    search + 1
                } else {
                    end
                };
            }
            out.push_str(&value[last_end..]);
            out
        }
    }

    /// Go's `Regexp.Expand` for a pattern without groups: `$$` is `$`,
    /// `$0` and `${0}` are the match, any other `$name` or `${name}` is
    /// empty, and a `$` not followed by a name is kept.
    fn expand_template(out: &mut String, template: &str, matched: &str) {
        let mut rest = template;
        while let Some(dollar) = rest.find('$') {
            out.push_str(&rest[..dollar]);
            rest = &rest[dollar + 1..];
            if let Some(after) = rest.strip_prefix('$') {
                out.push('$');
                rest = after;
                continue;
            }
            match template_name(rest) {
                Some((name, after)) => {
                    if name == "0" {
                        out.push_str(matched);
                    }
                    rest = after;
                }
                None => out.push('$'),
            }
        }
        out.push_str(rest);
    }

    fn template_name(s: &str) -> Option<(&str, &str)> {
        let (braced, body) = match s.strip_prefix('{') {
            Some(body) => (true, body),
            None => (false, s),
        };
        let len = body
            .find(|c: char| !(super::go_unicode::is_letter(c) || super::go_unicode::is_digit(c) || c == '_'))
            .unwrap_or(body.len());
        if len == 0 {
            return None;
        }
        let (name, after) = body.split_at(len);
        if braced { Some((name, after.strip_prefix('}')?)) } else { Some((name, after)) }
    }

    /// `${V#p}` (`longest`: `${V##p}`).
    pub(super) fn trim_prefix<'v>(pattern: &str, value: &'v str, longest: bool) -> Result<&'v str, String> {
        let glob = Glob::compile(pattern, longest)?;
        Ok(match glob.find_at(value, 0, true) {
            Some((_, end)) => &value[end..],
            None => value,
        })
    }

    /// `${V%p}` (`longest`: `${V%%p}`). A regular expression cannot find
    /// the shortest match that ends at the end, so, like BuildKit, this
    /// reverses pattern and value and trims a prefix.
    pub(super) fn trim_suffix(pattern: &str, value: &str, longest: bool) -> Result<String, String> {
        let reversed: String = value.chars().rev().collect();
        let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed, longest)?;
        Ok(trimmed.chars().rev().collect())
    }

    /// Reverses a pattern keeping each `\x` pair in order, so `a\*c`
    /// becomes `c\*a`. Only `\` escapes here, whatever the lexer's escape
    /// character, as in BuildKit.
    fn reverse_pattern(pattern: &str) -> String {
        let chars: Vec<char> = pattern.chars().collect();
        let mut units: Vec<&[char]> = Vec::with_capacity(chars.len());
        let mut i = 0;
        while i < chars.len() {
            let width = if chars[i] == '\\' && i + 1 < chars.len() { 2 } else { 1 };
            units.push(&chars[i..i + width]);
            i += width;
        }
        units.iter().rev().flat_map(|unit| unit.iter()).collect()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn reverse_pattern_keeps_escape_pairs_in_order() {
            assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
            assert_eq!(reverse_pattern("\\\\\\ab"), "b\\a\\\\");
            assert_eq!(reverse_pattern("ab\\"), "\\ba");
            assert_eq!(reverse_pattern("👽\\🚀🖖"), "🖖\\🚀👽");
            assert_eq!(reverse_pattern(""), "");
        }

        #[test]
        fn compile_rejects_escapes_other_than_star_question_backslash() {
            assert!(Glob::compile("\\", true).is_err());
            assert!(Glob::compile("\\x", true).is_err());
            assert!(Glob::compile("\\\\\\", true).is_err());
            assert!(Glob::compile("\\*\\?\\\\\\}\\/", true).is_ok());
        }

        #[test]
        fn unanchored_search_prefers_leftmost_then_greedy() {
            let glob = Glob::compile("a*b", true).unwrap();
            assert_eq!(glob.find_at("xxab ab", 0, false), Some((2, 7)));
            let lazy = Glob::compile("a*b", false).unwrap();
            assert_eq!(lazy.find_at("xxab ab", 0, false), Some((2, 4)));
        }
    }
}

/// Go's `unicode.IsLetter` (category L) and `unicode.IsDigit` (category
/// Nd) at Go's Unicode 15.0.0, which BuildKit uses to decide where a
/// variable name ends. Rust's `is_alphabetic`/`is_numeric` are wider (they
/// take combining vowel signs and `²`), which would change where names end.
mod go_unicode {
    use std::cmp::Ordering;

    pub(super) fn is_letter(c: char) -> bool {
        if c.is_ascii() { c.is_ascii_alphabetic() } else { in_table(LETTER, c) }
    }

    pub(super) fn is_digit(c: char) -> bool {
        if c.is_ascii() { c.is_ascii_digit() } else { in_table(DECIMAL_DIGIT, c) }
    }

    fn in_table(table: &[(u32, u32)], c: char) -> bool {
        let c = c as u32;
        table
            .binary_search_by(|&(lo, hi)| {
                if hi < c {
                    Ordering::Less
                } else if lo > c {
                    Ordering::Greater
                } else {
                    Ordering::Equal
                }
            })
            .is_ok()
    }

    // Generated from the Unicode 16.0.0 General_Category tables (as shipped
    // in regex-syntax 0.8), restricted to characters assigned by 15.0.0.
    #[rustfmt::skip]
    const LETTER: &[(u32, u32)] = &[
        (0x41, 0x5A), (0x61, 0x7A), (0xAA, 0xAA), (0xB5, 0xB5), (0xBA, 0xBA), (0xC0, 0xD6),
        (0xD8, 0xF6), (0xF8, 0x2C1), (0x2C6, 0x2D1), (0x2E0, 0x2E4), (0x2EC, 0x2EC), (0x2EE, 0x2EE),
        (0x370, 0x374), (0x376, 0x377), (0x37A, 0x37D), (0x37F, 0x37F), (0x386, 0x386),
        (0x388, 0x38A), (0x38C, 0x38C), (0x38E, 0x3A1), (0x3A3, 0x3F5), (0x3F7, 0x481),
        (0x48A, 0x52F), (0x531, 0x556), (0x559, 0x559), (0x560, 0x588), (0x5D0, 0x5EA),
        (0x5EF, 0x5F2), (0x620, 0x64A), (0x66E, 0x66F), (0x671, 0x6D3), (0x6D5, 0x6D5),
        (0x6E5, 0x6E6), (0x6EE, 0x6EF), (0x6FA, 0x6FC), (0x6FF, 0x6FF), (0x710, 0x710),
        (0x712, 0x72F), (0x74D, 0x7A5), (0x7B1, 0x7B1), (0x7CA, 0x7EA), (0x7F4, 0x7F5),
        (0x7FA, 0x7FA), (0x800, 0x815), (0x81A, 0x81A), (0x824, 0x824), (0x828, 0x828),
        (0x840, 0x858), (0x860, 0x86A), (0x870, 0x887), (0x889, 0x88E), (0x8A0, 0x8C9),
        (0x904, 0x939), (0x93D, 0x93D), (0x950, 0x950), (0x958, 0x961), (0x971, 0x980),
        (0x985, 0x98C), (0x98F, 0x990), (0x993, 0x9A8), (0x9AA, 0x9B0), (0x9B2, 0x9B2),
        (0x9B6, 0x9B9), (0x9BD, 0x9BD), (0x9CE, 0x9CE), (0x9DC, 0x9DD), (0x9DF, 0x9E1),
        (0x9F0, 0x9F1), (0x9FC, 0x9FC), (0xA05, 0xA0A), (0xA0F, 0xA10), (0xA13, 0xA28),
        (0xA2A, 0xA30), (0xA32, 0xA33), (0xA35, 0xA36), (0xA38, 0xA39), (0xA59, 0xA5C),
        (0xA5E, 0xA5E), (0xA72, 0xA74), (0xA85, 0xA8D), (0xA8F, 0xA91), (0xA93, 0xAA8),
        (0xAAA, 0xAB0), (0xAB2, 0xAB3), (0xAB5, 0xAB9), (0xABD, 0xABD), (0xAD0, 0xAD0),
        (0xAE0, 0xAE1), (0xAF9, 0xAF9), (0xB05, 0xB0C), (0xB0F, 0xB10), (0xB13, 0xB28),
        (0xB2A, 0xB30), (0xB32, 0xB33), (0xB35, 0xB39), (0xB3D, 0xB3D), (0xB5C, 0xB5D),
        (0xB5F, 0xB61), (0xB71, 0xB71), (0xB83, 0xB83), (0xB85, 0xB8A), (0xB8E, 0xB90),
        (0xB92, 0xB95), (0xB99, 0xB9A), (0xB9C, 0xB9C), (0xB9E, 0xB9F), (0xBA3, 0xBA4),
        (0xBA8, 0xBAA), (0xBAE, 0xBB9), (0xBD0, 0xBD0), (0xC05, 0xC0C), (0xC0E, 0xC10),
        (0xC12, 0xC28), (0xC2A, 0xC39), (0xC3D, 0xC3D), (0xC58, 0xC5A), (0xC5D, 0xC5D),
        (0xC60, 0xC61), (0xC80, 0xC80), (0xC85, 0xC8C), (0xC8E, 0xC90), (0xC92, 0xCA8),
        (0xCAA, 0xCB3), (0xCB5, 0xCB9), (0xCBD, 0xCBD), (0xCDD, 0xCDE), (0xCE0, 0xCE1),
        (0xCF1, 0xCF2), (0xD04, 0xD0C), (0xD0E, 0xD10), (0xD12, 0xD3A), (0xD3D, 0xD3D),
        (0xD4E, 0xD4E), (0xD54, 0xD56), (0xD5F, 0xD61), (0xD7A, 0xD7F), (0xD85, 0xD96),
        (0xD9A, 0xDB1), (0xDB3, 0xDBB), (0xDBD, 0xDBD), (0xDC0, 0xDC6), (0xE01, 0xE30),
        (0xE32, 0xE33), (0xE40, 0xE46), (0xE81, 0xE82), (0xE84, 0xE84), (0xE86, 0xE8A),
        (0xE8C, 0xEA3), (0xEA5, 0xEA5), (0xEA7, 0xEB0), (0xEB2, 0xEB3), (0xEBD, 0xEBD),
        (0xEC0, 0xEC4), (0xEC6, 0xEC6), (0xEDC, 0xEDF), (0xF00, 0xF00), (0xF40, 0xF47),
        (0xF49, 0xF6C), (0xF88, 0xF8C), (0x1000, 0x102A), (0x103F, 0x103F), (0x1050, 0x1055),
        (0x105A, 0x105D), (0x1061, 0x1061), (0x1065, 0x1066), (0x106E, 0x1070), (0x1075, 0x1081),
        (0x108E, 0x108E), (0x10A0, 0x10C5), (0x10C7, 0x10C7), (0x10CD, 0x10CD), (0x10D0, 0x10FA),
        (0x10FC, 0x1248), (0x124A, 0x124D), (0x1250, 0x1256), (0x1258, 0x1258), (0x125A, 0x125D),
        (0x1260, 0x1288), (0x128A, 0x128D), (0x1290, 0x12B0), (0x12B2, 0x12B5), (0x12B8, 0x12BE),
        (0x12C0, 0x12C0), (0x12C2, 0x12C5), (0x12C8, 0x12D6), (0x12D8, 0x1310), (0x1312, 0x1315),
        (0x1318, 0x135A), (0x1380, 0x138F), (0x13A0, 0x13F5), (0x13F8, 0x13FD), (0x1401, 0x166C),
        (0x166F, 0x167F), (0x1681, 0x169A), (0x16A0, 0x16EA), (0x16F1, 0x16F8), (0x1700, 0x1711),
        (0x171F, 0x1731), (0x1740, 0x1751), (0x1760, 0x176C), (0x176E, 0x1770), (0x1780, 0x17B3),
        (0x17D7, 0x17D7), (0x17DC, 0x17DC), (0x1820, 0x1878), (0x1880, 0x1884), (0x1887, 0x18A8),
        (0x18AA, 0x18AA), (0x18B0, 0x18F5), (0x1900, 0x191E), (0x1950, 0x196D), (0x1970, 0x1974),
        (0x1980, 0x19AB), (0x19B0, 0x19C9), (0x1A00, 0x1A16), (0x1A20, 0x1A54), (0x1AA7, 0x1AA7),
        (0x1B05, 0x1B33), (0x1B45, 0x1B4C), (0x1B83, 0x1BA0), (0x1BAE, 0x1BAF), (0x1BBA, 0x1BE5),
        (0x1C00, 0x1C23), (0x1C4D, 0x1C4F), (0x1C5A, 0x1C7D), (0x1C80, 0x1C88), (0x1C90, 0x1CBA),
        (0x1CBD, 0x1CBF), (0x1CE9, 0x1CEC), (0x1CEE, 0x1CF3), (0x1CF5, 0x1CF6), (0x1CFA, 0x1CFA),
        (0x1D00, 0x1DBF), (0x1E00, 0x1F15), (0x1F18, 0x1F1D), (0x1F20, 0x1F45), (0x1F48, 0x1F4D),
        (0x1F50, 0x1F57), (0x1F59, 0x1F59), (0x1F5B, 0x1F5B), (0x1F5D, 0x1F5D), (0x1F5F, 0x1F7D),
        (0x1F80, 0x1FB4), (0x1FB6, 0x1FBC), (0x1FBE, 0x1FBE), (0x1FC2, 0x1FC4), (0x1FC6, 0x1FCC),
        (0x1FD0, 0x1FD3), (0x1FD6, 0x1FDB), (0x1FE0, 0x1FEC), (0x1FF2, 0x1FF4), (0x1FF6, 0x1FFC),
        (0x2071, 0x2071), (0x207F, 0x207F), (0x2090, 0x209C), (0x2102, 0x2102), (0x2107, 0x2107),
        (0x210A, 0x2113), (0x2115, 0x2115), (0x2119, 0x211D), (0x2124, 0x2124), (0x2126, 0x2126),
        (0x2128, 0x2128), (0x212A, 0x212D), (0x212F, 0x2139), (0x213C, 0x213F), (0x2145, 0x2149),
        (0x214E, 0x214E), (0x2183, 0x2184), (0x2C00, 0x2CE4), (0x2CEB, 0x2CEE), (0x2CF2, 0x2CF3),
        (0x2D00, 0x2D25), (0x2D27, 0x2D27), (0x2D2D, 0x2D2D), (0x2D30, 0x2D67), (0x2D6F, 0x2D6F),
        (0x2D80, 0x2D96), (0x2DA0, 0x2DA6), (0x2DA8, 0x2DAE), (0x2DB0, 0x2DB6), (0x2DB8, 0x2DBE),
        (0x2DC0, 0x2DC6), (0x2DC8, 0x2DCE), (0x2DD0, 0x2DD6), (0x2DD8, 0x2DDE), (0x2E2F, 0x2E2F),
        (0x3005, 0x3006), (0x3031, 0x3035), (0x303B, 0x303C), (0x3041, 0x3096), (0x309D, 0x309F),
        (0x30A1, 0x30FA), (0x30FC, 0x30FF), (0x3105, 0x312F), (0x3131, 0x318E), (0x31A0, 0x31BF),
        (0x31F0, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0xA48C), (0xA4D0, 0xA4FD), (0xA500, 0xA60C),
        (0xA610, 0xA61F), (0xA62A, 0xA62B), (0xA640, 0xA66E), (0xA67F, 0xA69D), (0xA6A0, 0xA6E5),
        (0xA717, 0xA71F), (0xA722, 0xA788), (0xA78B, 0xA7CA), (0xA7D0, 0xA7D1), (0xA7D3, 0xA7D3),
        (0xA7D5, 0xA7D9), (0xA7F2, 0xA801), (0xA803, 0xA805), (0xA807, 0xA80A), (0xA80C, 0xA822),
        (0xA840, 0xA873), (0xA882, 0xA8B3), (0xA8F2, 0xA8F7), (0xA8FB, 0xA8FB), (0xA8FD, 0xA8FE),
        (0xA90A, 0xA925), (0xA930, 0xA946), (0xA960, 0xA97C), (0xA984, 0xA9B2), (0xA9CF, 0xA9CF),
        (0xA9E0, 0xA9E4), (0xA9E6, 0xA9EF), (0xA9FA, 0xA9FE), (0xAA00, 0xAA28), (0xAA40, 0xAA42),
        (0xAA44, 0xAA4B), (0xAA60, 0xAA76), (0xAA7A, 0xAA7A), (0xAA7E, 0xAAAF), (0xAAB1, 0xAAB1),
        (0xAAB5, 0xAAB6), (0xAAB9, 0xAABD), (0xAAC0, 0xAAC0), (0xAAC2, 0xAAC2), (0xAADB, 0xAADD),
        (0xAAE0, 0xAAEA), (0xAAF2, 0xAAF4), (0xAB01, 0xAB06), (0xAB09, 0xAB0E), (0xAB11, 0xAB16),
        (0xAB20, 0xAB26), (0xAB28, 0xAB2E), (0xAB30, 0xAB5A), (0xAB5C, 0xAB69), (0xAB70, 0xABE2),
        (0xAC00, 0xD7A3), (0xD7B0, 0xD7C6), (0xD7CB, 0xD7FB), (0xF900, 0xFA6D), (0xFA70, 0xFAD9),
        (0xFB00, 0xFB06), (0xFB13, 0xFB17), (0xFB1D, 0xFB1D), (0xFB1F, 0xFB28), (0xFB2A, 0xFB36),
        (0xFB38, 0xFB3C), (0xFB3E, 0xFB3E), (0xFB40, 0xFB41), (0xFB43, 0xFB44), (0xFB46, 0xFBB1),
        (0xFBD3, 0xFD3D), (0xFD50, 0xFD8F), (0xFD92, 0xFDC7), (0xFDF0, 0xFDFB), (0xFE70, 0xFE74),
        (0xFE76, 0xFEFC), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A), (0xFF66, 0xFFBE), (0xFFC2, 0xFFC7),
        (0xFFCA, 0xFFCF), (0xFFD2, 0xFFD7), (0xFFDA, 0xFFDC), (0x10000, 0x1000B),
        (0x1000D, 0x10026), (0x10028, 0x1003A), (0x1003C, 0x1003D), (0x1003F, 0x1004D),
        (0x10050, 0x1005D), (0x10080, 0x100FA), (0x10280, 0x1029C), (0x102A0, 0x102D0),
        (0x10300, 0x1031F), (0x1032D, 0x10340), (0x10342, 0x10349), (0x10350, 0x10375),
        (0x10380, 0x1039D), (0x103A0, 0x103C3), (0x103C8, 0x103CF), (0x10400, 0x1049D),
        (0x104B0, 0x104D3), (0x104D8, 0x104FB), (0x10500, 0x10527), (0x10530, 0x10563),
        (0x10570, 0x1057A), (0x1057C, 0x1058A), (0x1058C, 0x10592), (0x10594, 0x10595),
        (0x10597, 0x105A1), (0x105A3, 0x105B1), (0x105B3, 0x105B9), (0x105BB, 0x105BC),
        (0x10600, 0x10736), (0x10740, 0x10755), (0x10760, 0x10767), (0x10780, 0x10785),
        (0x10787, 0x107B0), (0x107B2, 0x107BA), (0x10800, 0x10805), (0x10808, 0x10808),
        (0x1080A, 0x10835), (0x10837, 0x10838), (0x1083C, 0x1083C), (0x1083F, 0x10855),
        (0x10860, 0x10876), (0x10880, 0x1089E), (0x108E0, 0x108F2), (0x108F4, 0x108F5),
        (0x10900, 0x10915), (0x10920, 0x10939), (0x10980, 0x109B7), (0x109BE, 0x109BF),
        (0x10A00, 0x10A00), (0x10A10, 0x10A13), (0x10A15, 0x10A17), (0x10A19, 0x10A35),
        (0x10A60, 0x10A7C), (0x10A80, 0x10A9C), (0x10AC0, 0x10AC7), (0x10AC9, 0x10AE4),
        (0x10B00, 0x10B35), (0x10B40, 0x10B55), (0x10B60, 0x10B72), (0x10B80, 0x10B91),
        (0x10C00, 0x10C48), (0x10C80, 0x10CB2), (0x10CC0, 0x10CF2), (0x10D00, 0x10D23),
        (0x10E80, 0x10EA9), (0x10EB0, 0x10EB1), (0x10F00, 0x10F1C), (0x10F27, 0x10F27),
        (0x10F30, 0x10F45), (0x10F70, 0x10F81), (0x10FB0, 0x10FC4), (0x10FE0, 0x10FF6),
        (0x11003, 0x11037), (0x11071, 0x11072), (0x11075, 0x11075), (0x11083, 0x110AF),
        (0x110D0, 0x110E8), (0x11103, 0x11126), (0x11144, 0x11144), (0x11147, 0x11147),
        (0x11150, 0x11172), (0x11176, 0x11176), (0x11183, 0x111B2), (0x111C1, 0x111C4),
        (0x111DA, 0x111DA), (0x111DC, 0x111DC), (0x11200, 0x11211), (0x11213, 0x1122B),
        (0x1123F, 0x11240), (0x11280, 0x11286), (0x11288, 0x11288), (0x1128A, 0x1128D),
        (0x1128F, 0x1129D), (0x1129F, 0x112A8), (0x112B0, 0x112DE), (0x11305, 0x1130C),
        (0x1130F, 0x11310), (0x11313, 0x11328), (0x1132A, 0x11330), (0x11332, 0x11333),
        (0x11335, 0x11339), (0x1133D, 0x1133D), (0x11350, 0x11350), (0x1135D, 0x11361),
        (0x11400, 0x11434), (0x11447, 0x1144A), (0x1145F, 0x11461), (0x11480, 0x114AF),
        (0x114C4, 0x114C5), (0x114C7, 0x114C7), (0x11580, 0x115AE), (0x115D8, 0x115DB),
        (0x11600, 0x1162F), (0x11644, 0x11644), (0x11680, 0x116AA), (0x116B8, 0x116B8),
        (0x11700, 0x1171A), (0x11740, 0x11746), (0x11800, 0x1182B), (0x118A0, 0x118DF),
        (0x118FF, 0x11906), (0x11909, 0x11909), (0x1190C, 0x11913), (0x11915, 0x11916),
        (0x11918, 0x1192F), (0x1193F, 0x1193F), (0x11941, 0x11941), (0x119A0, 0x119A7),
        (0x119AA, 0x119D0), (0x119E1, 0x119E1), (0x119E3, 0x119E3), (0x11A00, 0x11A00),
        (0x11A0B, 0x11A32), (0x11A3A, 0x11A3A), (0x11A50, 0x11A50), (0x11A5C, 0x11A89),
        (0x11A9D, 0x11A9D), (0x11AB0, 0x11AF8), (0x11C00, 0x11C08), (0x11C0A, 0x11C2E),
        (0x11C40, 0x11C40), (0x11C72, 0x11C8F), (0x11D00, 0x11D06), (0x11D08, 0x11D09),
        (0x11D0B, 0x11D30), (0x11D46, 0x11D46), (0x11D60, 0x11D65), (0x11D67, 0x11D68),
        (0x11D6A, 0x11D89), (0x11D98, 0x11D98), (0x11EE0, 0x11EF2), (0x11F02, 0x11F02),
        (0x11F04, 0x11F10), (0x11F12, 0x11F33), (0x11FB0, 0x11FB0), (0x12000, 0x12399),
        (0x12480, 0x12543), (0x12F90, 0x12FF0), (0x13000, 0x1342F), (0x13441, 0x13446),
        (0x14400, 0x14646), (0x16800, 0x16A38), (0x16A40, 0x16A5E), (0x16A70, 0x16ABE),
        (0x16AD0, 0x16AED), (0x16B00, 0x16B2F), (0x16B40, 0x16B43), (0x16B63, 0x16B77),
        (0x16B7D, 0x16B8F), (0x16E40, 0x16E7F), (0x16F00, 0x16F4A), (0x16F50, 0x16F50),
        (0x16F93, 0x16F9F), (0x16FE0, 0x16FE1), (0x16FE3, 0x16FE3), (0x17000, 0x187F7),
        (0x18800, 0x18CD5), (0x18D00, 0x18D08), (0x1AFF0, 0x1AFF3), (0x1AFF5, 0x1AFFB),
        (0x1AFFD, 0x1AFFE), (0x1B000, 0x1B122), (0x1B132, 0x1B132), (0x1B150, 0x1B152),
        (0x1B155, 0x1B155), (0x1B164, 0x1B167), (0x1B170, 0x1B2FB), (0x1BC00, 0x1BC6A),
        (0x1BC70, 0x1BC7C), (0x1BC80, 0x1BC88), (0x1BC90, 0x1BC99), (0x1D400, 0x1D454),
        (0x1D456, 0x1D49C), (0x1D49E, 0x1D49F), (0x1D4A2, 0x1D4A2), (0x1D4A5, 0x1D4A6),
        (0x1D4A9, 0x1D4AC), (0x1D4AE, 0x1D4B9), (0x1D4BB, 0x1D4BB), (0x1D4BD, 0x1D4C3),
        (0x1D4C5, 0x1D505), (0x1D507, 0x1D50A), (0x1D50D, 0x1D514), (0x1D516, 0x1D51C),
        (0x1D51E, 0x1D539), (0x1D53B, 0x1D53E), (0x1D540, 0x1D544), (0x1D546, 0x1D546),
        (0x1D54A, 0x1D550), (0x1D552, 0x1D6A5), (0x1D6A8, 0x1D6C0), (0x1D6C2, 0x1D6DA),
        (0x1D6DC, 0x1D6FA), (0x1D6FC, 0x1D714), (0x1D716, 0x1D734), (0x1D736, 0x1D74E),
        (0x1D750, 0x1D76E), (0x1D770, 0x1D788), (0x1D78A, 0x1D7A8), (0x1D7AA, 0x1D7C2),
        (0x1D7C4, 0x1D7CB), (0x1DF00, 0x1DF1E), (0x1DF25, 0x1DF2A), (0x1E030, 0x1E06D),
        (0x1E100, 0x1E12C), (0x1E137, 0x1E13D), (0x1E14E, 0x1E14E), (0x1E290, 0x1E2AD),
        (0x1E2C0, 0x1E2EB), (0x1E4D0, 0x1E4EB), (0x1E7E0, 0x1E7E6), (0x1E7E8, 0x1E7EB),
        (0x1E7ED, 0x1E7EE), (0x1E7F0, 0x1E7FE), (0x1E800, 0x1E8C4), (0x1E900, 0x1E943),
        (0x1E94B, 0x1E94B), (0x1EE00, 0x1EE03), (0x1EE05, 0x1EE1F), (0x1EE21, 0x1EE22),
        (0x1EE24, 0x1EE24), (0x1EE27, 0x1EE27), (0x1EE29, 0x1EE32), (0x1EE34, 0x1EE37),
        (0x1EE39, 0x1EE39), (0x1EE3B, 0x1EE3B), (0x1EE42, 0x1EE42), (0x1EE47, 0x1EE47),
        (0x1EE49, 0x1EE49), (0x1EE4B, 0x1EE4B), (0x1EE4D, 0x1EE4F), (0x1EE51, 0x1EE52),
        (0x1EE54, 0x1EE54), (0x1EE57, 0x1EE57), (0x1EE59, 0x1EE59), (0x1EE5B, 0x1EE5B),
        (0x1EE5D, 0x1EE5D), (0x1EE5F, 0x1EE5F), (0x1EE61, 0x1EE62), (0x1EE64, 0x1EE64),
        (0x1EE67, 0x1EE6A), (0x1EE6C, 0x1EE72), (0x1EE74, 0x1EE77), (0x1EE79, 0x1EE7C),
        (0x1EE7E, 0x1EE7E), (0x1EE80, 0x1EE89), (0x1EE8B, 0x1EE9B), (0x1EEA1, 0x1EEA3),
        (0x1EEA5, 0x1EEA9), (0x1EEAB, 0x1EEBB), (0x20000, 0x2A6DF), (0x2A700, 0x2B739),
        (0x2B740, 0x2B81D), (0x2B820, 0x2CEA1), (0x2CEB0, 0x2EBE0), (0x2F800, 0x2FA1D),
        (0x30000, 0x3134A), (0x31350, 0x323AF),
    ];

    #[rustfmt::skip]
    const DECIMAL_DIGIT: &[(u32, u32)] = &[
        (0x30, 0x39), (0x660, 0x669), (0x6F0, 0x6F9), (0x7C0, 0x7C9), (0x966, 0x96F),
        (0x9E6, 0x9EF), (0xA66, 0xA6F), (0xAE6, 0xAEF), (0xB66, 0xB6F), (0xBE6, 0xBEF),
        (0xC66, 0xC6F), (0xCE6, 0xCEF), (0xD66, 0xD6F), (0xDE6, 0xDEF), (0xE50, 0xE59),
        (0xED0, 0xED9), (0xF20, 0xF29), (0x1040, 0x1049), (0x1090, 0x1099), (0x17E0, 0x17E9),
        (0x1810, 0x1819), (0x1946, 0x194F), (0x19D0, 0x19D9), (0x1A80, 0x1A89), (0x1A90, 0x1A99),
        (0x1B50, 0x1B59), (0x1BB0, 0x1BB9), (0x1C40, 0x1C49), (0x1C50, 0x1C59), (0xA620, 0xA629),
        (0xA8D0, 0xA8D9), (0xA900, 0xA909), (0xA9D0, 0xA9D9), (0xA9F0, 0xA9F9), (0xAA50, 0xAA59),
        (0xABF0, 0xABF9), (0xFF10, 0xFF19), (0x104A0, 0x104A9), (0x10D30, 0x10D39),
        (0x11066, 0x1106F), (0x110F0, 0x110F9), (0x11136, 0x1113F), (0x111D0, 0x111D9),
        (0x112F0, 0x112F9), (0x11450, 0x11459), (0x114D0, 0x114D9), (0x11650, 0x11659),
        (0x116C0, 0x116C9), (0x11730, 0x11739), (0x118E0, 0x118E9), (0x11950, 0x11959),
        (0x11C50, 0x11C59), (0x11D50, 0x11D59), (0x11DA0, 0x11DA9), (0x11F50, 0x11F59),
        (0x16A60, 0x16A69), (0x16AC0, 0x16AC9), (0x16B50, 0x16B59), (0x1D7CE, 0x1D7FF),
        (0x1E140, 0x1E149), (0x1E2F0, 0x1E2F9), (0x1E4F0, 0x1E4F9), (0x1E950, 0x1E959),
        (0x1FBF0, 0x1FBF9),
    ];
}

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
            };
            if let Err(e) = lexer.process_word(&input, &env) {
                assert!(e.offset <= input.len(), "{input:?}: {e:?}");
            }
            let _ = lexer.process_words(&input, &env);
        }
    }
}
