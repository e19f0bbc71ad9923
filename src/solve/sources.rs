//! Where a COPY's files come from, selected and listed.
//!
//! - [`context_sources`] / [`context_digest`]: what patterns select in the
//!   build context, and the content digest of exactly that (a key input).
//! - [`view_sources`]: what patterns select in another stage's or an
//!   image's filesystem (wildcards per path component; the named path's
//!   symlinks followed).
//! - [`dir_source`]: a directory on disk (an unpacked ADD archive).
//! - [`archive_reader`]: ADD's test for a local tar archive, plain or
//!   compressed, by its first bytes.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::Path;

use super::StepError;
use super::copy_plan::{Source, SourceEntry};
use crate::context::Context;
use crate::snapshot::{MergedView, components};

/// The sources `patterns` select in the build context.
pub fn context_sources(context: &Context, patterns: &[String]) -> Result<Vec<Source>, StepError> {
    let selections = context.resolve(patterns)?;
    let mut sources = Vec::new();
    for selection in &selections {
        let mut entries = Vec::new();
        for selected in context.walk_selection(selection) {
            let metadata =
                fs::symlink_metadata(&selected.absolute).map_err(StepError::io(&selected.absolute))?;
            entries.push(SourceEntry {
                rel: selected.relative.to_string(),
                fs_path: selected.absolute,
                metadata,
            });
        }
        let name = selection.path.rsplit('/').next().unwrap_or_default().to_string();
        sources.push(Source { name, entries });
    }
    Ok(sources)
}

/// The content digest of what `patterns` select in the context.
pub fn context_digest(context: &Context, patterns: &[String]) -> Result<blake3::Hash, StepError> {
    let selections = context.resolve(patterns)?;
    Ok(context.digest_of(&selections)?)
}

/// The sources a COPY names in another stage or image: exact paths or
/// wildcards (per path component), symlinks followed for the named path.
pub fn view_sources(view: &MergedView, pattern: &str) -> Result<Vec<Source>, StepError> {
    let io = |path: &str| StepError::io(path.to_string());
    let parts = components(pattern);
    let mut matches: Vec<String> = vec![String::new()];
    for part in &parts {
        let mut next = Vec::new();
        for base in &matches {
            let dir = if base.is_empty() { "/".to_string() } else { base.clone() };
            if has_wildcard(part) {
                let entries = match view.lookup(&dir, true).map_err(io(&dir))? {
                    Some(found) if found.metadata.is_dir() => view.read_dir(&found.path).map_err(io(&dir))?,
                    _ => BTreeMap::new(),
                };
                for name in entries.keys() {
                    if crate::context::wildcard_match(part, name) {
                        next.push(format!("{base}/{name}"));
                    }
                }
            } else {
                next.push(format!("{base}/{part}"));
            }
        }
        matches = next;
    }
    let mut sources = Vec::new();
    for path in matches {
        let path = if path.is_empty() { "/".to_string() } else { path };
        let Some(found) = view.lookup(&path, true).map_err(io(&path))? else {
            if has_wildcard(pattern) {
                continue;
            }
            return Err(StepError::failed(format!("{pattern}: not found in the source stage")));
        };
        let name = components(&path).last().cloned().unwrap_or_default();
        let mut entries = vec![SourceEntry {
            rel: String::new(),
            fs_path: found.fs_path.clone(),
            metadata: found.metadata.clone(),
        }];
        if found.metadata.is_dir() {
            walk_view(view, &found.path, "", &mut entries).map_err(io(&path))?;
        }
        sources.push(Source { name, entries });
    }
    if sources.is_empty() {
        return Err(StepError::failed(format!("{pattern}: no source files were specified")));
    }
    Ok(sources)
}

fn walk_view(view: &MergedView, dir: &str, rel: &str, out: &mut Vec<SourceEntry>) -> io::Result<()> {
    for (name, (fs_path, metadata)) in view.read_dir(dir)? {
        let child_rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        let is_dir = metadata.is_dir();
        out.push(SourceEntry { rel: child_rel.clone(), fs_path, metadata });
        if is_dir {
            walk_view(view, &format!("{}/{name}", dir.trim_end_matches('/')), &child_rel, out)?;
        }
    }
    Ok(())
}

fn has_wildcard(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// A directory on disk as a copy source (its contents, recursively).
pub fn dir_source(dir: &Path, name: &str) -> Result<Source, StepError> {
    let mut entries = Vec::new();
    let root_meta = fs::symlink_metadata(dir).map_err(StepError::io(dir))?;
    entries.push(SourceEntry { rel: String::new(), fs_path: dir.to_path_buf(), metadata: root_meta });
    for entry in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_path_buf();
            StepError::Io { path, source: e.into() }
        })?;
        let rel = entry.path().strip_prefix(dir).expect("under dir").to_string_lossy().into_owned();
        let metadata = fs::symlink_metadata(entry.path()).map_err(StepError::io(entry.path()))?;
        entries.push(SourceEntry { rel, fs_path: entry.path().to_path_buf(), metadata });
    }
    Ok(Source { name: name.to_string(), entries })
}

/// A reader of the decompressed tar in `path`, or `None` when it is not a
/// tar archive (plain or compressed), which ADD copies as a file.
pub fn archive_reader(path: &Path) -> io::Result<Option<Box<dyn Read>>> {
    let mut head = [0u8; 512];
    let mut file = fs::File::open(path)?;
    let n = read_full(&mut file, &mut head)?;
    let head = &head[..n];
    let file = fs::File::open(path)?;
    let reader: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(file))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(file))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::new(file)?)
    } else if n == 512 && &head[257..262] == b"ustar" {
        Box::new(file)
    } else {
        return Ok(None);
    };
    // A compressed file that is not a tar inside is copied as is.
    let mut inner = reader;
    let mut block = [0u8; 512];
    let got = read_full(&mut inner, &mut block).unwrap_or(0);
    if got < 512 || &block[257..262] != b"ustar" {
        return Ok(None);
    }
    Ok(Some(Box::new(io::Cursor::new(block.to_vec()).chain(inner))))
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(name: &str) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(2);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, &b"hi"[..]).unwrap();
        builder.into_inner().unwrap()
    }

    fn entries(reader: Box<dyn Read>) -> Vec<String> {
        tar::Archive::new(reader)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn plain_and_compressed_tars_are_archives() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_with("inside.txt");
        let plain = dir.path().join("a.tar");
        fs::write(&plain, &tar).unwrap();
        let gz = dir.path().join("a.tar.gz");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut encoder, &tar).unwrap();
        fs::write(&gz, encoder.finish().unwrap()).unwrap();
        let zst = dir.path().join("a.tar.zst");
        fs::write(&zst, zstd::encode_all(tar.as_slice(), 1).unwrap()).unwrap();
        for path in [plain, gz, zst] {
            let reader = archive_reader(&path).unwrap().unwrap_or_else(|| panic!("{path:?}"));
            assert_eq!(entries(reader), vec!["inside.txt"]);
        }
    }

    #[test]
    fn other_files_and_compressed_non_tars_are_copied_as_files() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        fs::write(&text, "just text\n").unwrap();
        let gz = dir.path().join("notes.gz");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut encoder, b"just text\n").unwrap();
        fs::write(&gz, encoder.finish().unwrap()).unwrap();
        assert!(archive_reader(&text).unwrap().is_none());
        assert!(archive_reader(&gz).unwrap().is_none());
    }
}
