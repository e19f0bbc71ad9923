//! BuildKit's shell patterns, for `${V#p}`, `${V%p}` and `${V/p/r}`.
//!
//! - `Glob`: a pattern compiled as BuildKit's Go regular expression: `*` is
//!   `.*` (`.*?` for the shortest-match `#` and `%`), `?` is `.`, `\` escapes
//!   only `*`, `?` and `\` (and is dropped before `}` and `/`), and
//!   everything else, `[` and `]` included, is literal: bracket expressions
//!   are not supported. Go's `.` does not match a newline, so neither do `*`
//!   and `?` here.
//! - `trim_prefix`, `trim_suffix`: `${V#p}`, `${V##p}`, `${V%p}`, `${V%%p}`.
//! - `Glob::replace_first`, `Glob::replace_all`: `${V/p/r}`, `${V//p/r}`.
//!
//! Matching follows Go's leftmost-first rules on a Pike VM, in time linear in
//! the value for a given pattern.

#[derive(Debug, Clone, Copy)]
enum Inst {
    Char(char),
    AnyButNewline,
    /// Try the first target, then the second.
    Split(usize, usize),
    Jump(usize),
    Match,
}

/// A compiled pattern: a program for the Pike VM.
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
