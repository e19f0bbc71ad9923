//! The context walk: one pass over the tree, directories read in parallel,
//! `.dockerignore` applied on the way down so an excluded directory with no
//! possible `!` exception below it is never read.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::dockerignore::{IgnoreMatcher, ParentHits};
use super::entry::{ContextEntry, tree_order};
use super::error::{ContextError, io_error};

pub(crate) struct Walk<'a> {
    pub(crate) root: &'a Path,
    pub(crate) matcher: &'a IgnoreMatcher,
}

#[derive(Default)]
struct Found {
    entries: Vec<ContextEntry>,
    ignored: usize,
}

impl Walk<'_> {
    /// All non-excluded entries below the root in tree order, and how many
    /// excluded entries were seen (an excluded directory that is skipped
    /// counts once).
    pub(crate) fn run(&self) -> Result<(Vec<ContextEntry>, usize), ContextError> {
        let mut found = self.dir(Path::new(""), "", &ParentHits::default())?;
        found.entries.par_sort_unstable_by(|a, b| tree_order(&a.path, &b.path));
        Ok((found.entries, found.ignored))
    }

    fn dir(&self, fs_dir: &Path, dir: &str, hits: &ParentHits) -> Result<Found, ContextError> {
        let abs_dir = self.root.join(fs_dir);
        let mut found = Found::default();
        let mut subdirs = Vec::new();
        for item in fs::read_dir(&abs_dir).map_err(io_error(&abs_dir))? {
            let item = item.map_err(io_error(&abs_dir))?;
            let name = item.file_name();
            let path = join(dir, &name);
            let fs_path = fs_dir.join(&name);
            let meta = item.metadata().map_err(io_error(self.root.join(&fs_path)))?;
            let (excluded, child_hits) = if self.matcher.is_empty() {
                (false, ParentHits::default())
            } else {
                let (excluded, hits) = self.matcher.matches_below(&path, hits);
                (excluded, hits)
            };
            if meta.is_dir() {
                let must_enter = !excluded || self.matcher.may_reinclude_below(&path);
                if must_enter {
                    subdirs.push((
                        ContextEntry::from_metadata(path, fs_path, &meta, None),
                        excluded,
                        child_hits,
                    ));
                } else {
                    found.ignored += 1;
                }
            } else if excluded {
                found.ignored += 1;
            } else {
                let target = if meta.file_type().is_symlink() {
                    Some(
                        fs::read_link(self.root.join(&fs_path))
                            .map_err(io_error(self.root.join(&fs_path)))?,
                    )
                } else {
                    None
                };
                found.entries.push(ContextEntry::from_metadata(path, fs_path, &meta, target));
            }
        }
        let below: Vec<(ContextEntry, bool, Found)> = subdirs
            .into_par_iter()
            .map(|(entry, excluded, hits)| {
                let inner = self.dir(&entry.fs_path, &entry.path, &hits)?;
                Ok((entry, excluded, inner))
            })
            .collect::<Result<_, ContextError>>()?;
        for (entry, excluded, inner) in below {
            // An excluded directory is still sent when something inside it
            // is re-included, like BuildKit creates the parents of an
            // included file.
            if !excluded || !inner.entries.is_empty() {
                found.entries.push(entry);
            } else {
                found.ignored += 1;
            }
            found.entries.extend(inner.entries);
            found.ignored += inner.ignored;
        }
        Ok(found)
    }
}

fn join(dir: &str, name: &OsStr) -> String {
    let name = name.to_string_lossy();
    if dir.is_empty() { name.into_owned() } else { format!("{dir}/{name}") }
}

/// `root` joined with a context-relative path.
pub(crate) fn absolute(root: &Path, fs_path: &Path) -> PathBuf {
    if fs_path.as_os_str().is_empty() { root.to_path_buf() } else { root.join(fs_path) }
}
