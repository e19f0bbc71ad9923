//! A streaming check of a layer tar, for layers that are stored rather than extracted (import, load).
//!
//! - [`TarCheck`] is a `Write` sink that parses tar headers as bytes pass
//!   through it, without buffering entry data.
//! - It finds what would make extraction unsafe or impossible: a path that
//!   climbs out of the root ([`normalise`], the [`crate::paths::confined`]
//!   rule), an entry written through a symlink of the same layer that points
//!   out of it, a hardlink that points out, a bad header, a tar cut short.

use std::collections::HashMap;
use std::io::{self, Write};

use crate::paths;

const BLOCK: usize = 512;

/// What is wrong with a layer tar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TarProblem {
    /// An entry's name has a `..` that climbs above the layer root, or a NUL byte.
    #[error("entry {entry:?} points outside the layer root (`..` climbs above `/`)")]
    PathEscape {
        /// The entry's name as the tar spells it.
        entry: String,
    },
    /// An entry lies under a symlink, put earlier in the same layer, whose
    /// target is absolute or climbs above the layer root.
    #[error(
        "entry {entry:?} writes through the symlink {link:?} of the same layer, which points outside the layer root"
    )]
    ThroughSymlink {
        /// The entry's name as the tar spells it.
        entry: String,
        /// The symlink's path, normalised and relative to the layer root.
        link: String,
    },
    /// A hardlink's target climbs above the layer root or holds a NUL byte.
    #[error("hardlink {entry:?} points outside the layer root: {target:?}")]
    HardlinkEscape {
        /// The hardlink's name as the tar spells it.
        entry: String,
        /// The target as the tar spells it.
        target: String,
    },
    /// A non-zero header block whose checksum does not match: the stream is
    /// not a tar, or is corrupt.
    #[error("not a tar archive: bad header checksum at byte {offset}")]
    BadHeader {
        /// Where the header block starts, in bytes from the start of the tar.
        offset: u64,
    },
    /// The stream stops inside an entry's data or an extended header's data.
    #[error("the tar archive is truncated in entry {entry:?} ({missing} bytes missing)")]
    Truncated {
        /// The name of the last entry whose header was read; empty if none was.
        entry: String,
        /// Bytes still expected, counting the padding to the 512-byte block.
        missing: u64,
    },
    /// The stream stops partway through a 512-byte header block.
    #[error("the tar archive is truncated inside a header at byte {offset}")]
    TruncatedHeader {
        /// Where the stream stops: its length in bytes.
        offset: u64,
    },
}

/// Counts of what the checked tar holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TarSummary {
    /// Entries in the tar, not counting GNU long-name and PAX headers.
    pub entries: u64,
}

/// A `Write` that checks a tar stream; see the module docs.
#[derive(Debug, Default)]
pub struct TarCheck {
    offset: u64,
    header: Vec<u8>,
    /// Data (with padding) of the current entry still to come.
    skip: u64,
    /// Extended-header data being collected ('L', 'K', 'x').
    collect: Option<(u8, Vec<u8>, u64)>,
    long_name: Option<String>,
    long_link: Option<String>,
    pax_path: Option<String>,
    pax_link: Option<String>,
    current: String,
    /// Symlinks of this layer whose target leaves the root (absolute, or
    /// `..` above `/`): writing through them is what a hostile layer does.
    escaping_symlinks: HashMap<String, String>,
    ended: bool,
    summary: TarSummary,
    problem: Option<TarProblem>,
}

impl TarCheck {
    /// A check expecting the first byte of a tar.
    pub fn new() -> TarCheck {
        TarCheck::default()
    }

    /// The first problem found so far, if any.
    pub fn problem(&self) -> Option<&TarProblem> {
        self.problem.as_ref()
    }

    /// Ends the stream: the tar must not stop inside an entry or a header.
    /// A tar without the two zero blocks at its end is accepted, as Docker
    /// accepts it.
    pub fn finish(self) -> Result<TarSummary, TarProblem> {
        if let Some(problem) = self.problem {
            return Err(problem);
        }
        if self.ended {
            return Ok(self.summary);
        }
        if self.skip > 0 || self.collect.is_some() {
            let missing =
                self.skip + self.collect.as_ref().map_or(0, |(_, data, size)| size - data.len() as u64);
            return Err(TarProblem::Truncated { entry: self.current, missing });
        }
        if !self.header.is_empty() {
            return Err(TarProblem::TruncatedHeader { offset: self.offset });
        }
        Ok(self.summary)
    }

    fn feed(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() && self.problem.is_none() && !self.ended {
            if let Some((_, data, size)) = &mut self.collect {
                let want = (*size - data.len() as u64).min(buf.len() as u64) as usize;
                data.extend_from_slice(&buf[..want]);
                buf = &buf[want..];
                self.offset += want as u64;
                if data.len() as u64 == *size {
                    let (kind, data, _) = self.collect.take().expect("collecting");
                    self.extended(kind, &data);
                }
                continue;
            }
            if self.skip > 0 {
                let n = self.skip.min(buf.len() as u64) as usize;
                self.skip -= n as u64;
                self.offset += n as u64;
                buf = &buf[n..];
                continue;
            }
            let want = BLOCK - self.header.len();
            let n = want.min(buf.len());
            self.header.extend_from_slice(&buf[..n]);
            buf = &buf[n..];
            self.offset += n as u64;
            if self.header.len() == BLOCK {
                let header = std::mem::take(&mut self.header);
                self.header_block(&header);
            }
        }
    }

    fn header_block(&mut self, block: &[u8]) {
        if block.iter().all(|&b| b == 0) {
            // One zero block ends the archive for our purposes; readers stop there too.
            self.ended = true;
            return;
        }
        let start = self.offset - BLOCK as u64;
        if !checksum_ok(block) {
            self.problem = Some(TarProblem::BadHeader { offset: start });
            return;
        }
        let size = parse_number(&block[124..136]);
        let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        let kind = block[156];
        match kind {
            b'L' | b'K' | b'x' => {
                if size > 1 << 20 {
                    // Longer than any path: skip rather than hold it.
                    self.skip = padded;
                } else {
                    self.collect = Some((kind, Vec::with_capacity(size as usize), size));
                    self.skip = padded - size;
                }
                // Data is collected first, then the padding skipped.
                if let Some((_, _, s)) = &self.collect
                    && *s == 0
                {
                    let (kind, data, _) = self.collect.take().expect("collecting");
                    self.extended(kind, &data);
                }
                return;
            }
            b'g' => {
                self.skip = padded;
                return;
            }
            _ => {}
        }
        let name =
            self.pax_path.take().or_else(|| self.long_name.take()).unwrap_or_else(|| header_name(block));
        let link =
            self.pax_link.take().or_else(|| self.long_link.take()).unwrap_or_else(|| field(&block[157..257]));
        self.current = name.clone();
        self.summary.entries += 1;
        // Hardlinks, symlinks, devices, fifos and dirs carry no data.
        self.skip = if matches!(kind, b'1' | b'2' | b'3' | b'4' | b'5' | b'6') { 0 } else { padded };
        let Some(path) = normalise(&name) else {
            self.problem = Some(TarProblem::PathEscape { entry: name });
            return;
        };
        let mut prefix = String::new();
        for component in path.split('/').take(path.split('/').count().saturating_sub(1)) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(component);
            if self.escaping_symlinks.contains_key(&prefix) {
                self.problem = Some(TarProblem::ThroughSymlink { entry: name, link: prefix });
                return;
            }
        }
        self.escaping_symlinks.remove(&path);
        match kind {
            b'2' => {
                let parent = path.rsplit_once('/').map_or("", |(dir, _)| dir);
                let escapes = link.starts_with('/') || normalise(&format!("{parent}/{link}")).is_none();
                if escapes {
                    self.escaping_symlinks.insert(path, link);
                }
            }
            b'1' if normalise(&link).is_none() => {
                self.problem = Some(TarProblem::HardlinkEscape { entry: name, target: link });
            }
            _ => {}
        }
    }

    fn extended(&mut self, kind: u8, data: &[u8]) {
        match kind {
            b'L' => self.long_name = Some(field(data)),
            b'K' => self.long_link = Some(field(data)),
            _ => {
                for (key, value) in pax_records(data) {
                    match key.as_str() {
                        "path" => self.pax_path = Some(value),
                        "linkpath" => self.pax_link = Some(value),
                        _ => {}
                    }
                }
            }
        }
    }
}

impl Write for TarCheck {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.feed(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn checksum_ok(block: &[u8]) -> bool {
    let stored = parse_number(&block[148..156]);
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| if (148..156).contains(&i) { u64::from(b' ') } else { u64::from(b) })
        .sum();
    stored == sum
}

/// Octal, or base-256 when the high bit of the first byte is set.
fn parse_number(field: &[u8]) -> u64 {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        return field[1..]
            .iter()
            .fold(u64::from(field[0] & 0x7f), |n, &b| n.saturating_mul(256).saturating_add(u64::from(b)));
    }
    let text: Vec<u8> =
        field.iter().copied().skip_while(|b| *b == b' ').take_while(|b| (b'0'..=b'7').contains(b)).collect();
    text.iter().fold(0u64, |n, &b| n.saturating_mul(8).saturating_add(u64::from(b - b'0')))
}

fn field(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The name, with the ustar prefix when there is one.
fn header_name(block: &[u8]) -> String {
    let name = field(&block[0..100]);
    let ustar = &block[257..262] == b"ustar";
    let prefix = if ustar { field(&block[345..500]) } else { String::new() };
    if prefix.is_empty() { name } else { format!("{prefix}/{name}") }
}

fn pax_records(data: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let Some(space) = rest.iter().position(|&b| b == b' ') else { break };
        let Some(len) = std::str::from_utf8(&rest[..space]).ok().and_then(|s| s.parse::<usize>().ok()) else {
            break;
        };
        if len <= space + 1 || len > rest.len() {
            break;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(eq) = record.iter().position(|&b| b == b'=') {
            out.push((
                String::from_utf8_lossy(&record[..eq]).into_owned(),
                String::from_utf8_lossy(&record[eq + 1..]).into_owned(),
            ));
        }
        rest = &rest[len..];
    }
    out
}

/// The path relative to the root, or `None` if `..` climbs above it or it
/// holds a NUL byte: [`paths::confined`] for text.
pub fn normalise(name: &str) -> Option<String> {
    paths::confined(name.as_bytes()).ok().and_then(|path| String::from_utf8(path).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(entries: &[(&str, u8, &str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, kind, link, data) in entries {
            let mut header = [0u8; 512];
            header[..name.len()].copy_from_slice(name.as_bytes());
            header[100..107].copy_from_slice(b"0000644");
            header[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
            header[156] = *kind;
            header[157..157 + link.len()].copy_from_slice(link.as_bytes());
            header[257..263].copy_from_slice(b"ustar\0");
            header[263..265].copy_from_slice(b"00");
            header[148..156].copy_from_slice(b"        ");
            let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
            header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
            out.extend_from_slice(&header);
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    fn check(bytes: &[u8]) -> Result<TarSummary, TarProblem> {
        let mut check = TarCheck::new();
        // Odd chunk sizes exercise the header reassembly.
        for chunk in bytes.chunks(77) {
            check.write_all(chunk).unwrap();
        }
        check.finish()
    }

    #[test]
    fn plain_tar_passes() {
        let tar = tar_with(&[
            ("bin/", b'5', "", b""),
            ("bin/sh", b'0', "", b"#!"),
            ("bin/ash", b'1', "bin/sh", b""),
        ]);
        assert_eq!(check(&tar).unwrap().entries, 3);
    }

    #[test]
    fn dot_dot_escape_is_found() {
        let tar = tar_with(&[("a/../../evil", b'0', "", b"x")]);
        assert!(matches!(check(&tar), Err(TarProblem::PathEscape { .. })));
    }

    #[test]
    fn write_through_symlink_is_found() {
        let tar = tar_with(&[("etc", b'2', "/host/etc", b""), ("etc/passwd", b'0', "", b"root")]);
        assert!(matches!(check(&tar), Err(TarProblem::ThroughSymlink { .. })));
    }

    #[test]
    fn write_through_relative_symlink_inside_is_fine() {
        let tar = tar_with(&[
            ("usr/lib/", b'5', "", b""),
            ("lib", b'2', "usr/lib", b""),
            ("lib/x.so", b'0', "", b""),
        ]);
        assert!(check(&tar).is_ok());
        let tar = tar_with(&[("a/up", b'2', "../../..", b""), ("a/up/x", b'0', "", b"")]);
        assert!(matches!(check(&tar), Err(TarProblem::ThroughSymlink { .. })));
    }

    #[test]
    fn symlink_replaced_by_directory_is_fine() {
        let tar = tar_with(&[("d", b'2', "/x", b""), ("d", b'5', "", b""), ("d/f", b'0', "", b"")]);
        assert!(check(&tar).is_ok());
    }

    #[test]
    fn hardlink_escape_is_found() {
        let tar = tar_with(&[("link", b'1', "../../etc/shadow", b"")]);
        assert!(matches!(check(&tar), Err(TarProblem::HardlinkEscape { .. })));
    }

    #[test]
    fn truncation_is_found() {
        let tar = tar_with(&[("f", b'0', "", &[7u8; 3000])]);
        assert!(matches!(check(&tar[..1500]), Err(TarProblem::Truncated { .. })));
        assert!(matches!(check(&tar[..100]), Err(TarProblem::TruncatedHeader { .. })));
    }

    #[test]
    fn json_is_not_a_tar() {
        assert!(matches!(check(&[b'{'; 600]), Err(TarProblem::BadHeader { offset: 0 })));
    }

    #[test]
    fn gnu_long_names_are_followed() {
        let long = format!("{}/../../x", "d".repeat(120));
        let tar = tar_with(&[("././@LongLink", b'L', "", long.as_bytes()), ("short", b'0', "", b"")]);
        assert!(matches!(check(&tar), Err(TarProblem::PathEscape { entry }) if entry == long));
    }
}
