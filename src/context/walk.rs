//! The context walk: one pass over the tree, directories read in parallel,
//! `.dockerignore` applied on the way down so an excluded directory with no
//! possible `!` exception below it is never read.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::dockerignore::{IgnoreMatcher, ParentHits};
use super::entry::ContextEntry;
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
        let found = self.dir(Path::new(""), "", &ParentHits::default())?;
        Ok((found.entries, found.ignored))
    }

    /// The entries below `dir`, already in tree order: siblings sorted by
    /// name, each directory followed by its subtree (what `tree_order` gives,
    /// since `/` sorts before every byte), so no sort of the whole list is
    /// needed. Subdirectories are read in parallel.
    fn dir(&self, fs_dir: &Path, dir: &str, hits: &ParentHits) -> Result<Found, ContextError> {
        let abs_dir = self.root.join(fs_dir);
        let mut found = Found::default();
        // An entry, and for a directory to enter: excluded?, and the hits
        // its children inherit.
        let mut children: Vec<(ContextEntry, Option<(bool, ParentHits)>)> = Vec::new();
        for item in fs::read_dir(&abs_dir).map_err(io_error(&abs_dir))? {
            let item = item.map_err(io_error(&abs_dir))?;
            let name = item.file_name();
            let path = join(dir, &name);
            let fs_path = fs_dir.join(&name);
            let meta = item.metadata().map_err(io_error(self.root.join(&fs_path)))?;
            let (excluded, child_hits) = if self.matcher.is_empty() {
                (false, ParentHits::default())
            } else {
                self.matcher.matches_below(&path, hits)
            };
            if meta.is_dir() {
                if !excluded || self.matcher.may_reinclude_below(&path) {
                    let entry = ContextEntry::from_metadata(path, fs_path, &meta, None);
                    children.push((entry, Some((excluded, child_hits))));
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
                children.push((ContextEntry::from_metadata(path, fs_path, &meta, target), None));
            }
        }
        // Siblings share the `dir/` prefix: comparing whole paths compares names.
        children.sort_unstable_by(|a, b| a.0.path.cmp(&b.0.path));
        let subtrees: Vec<Found> = children
            .par_iter()
            .filter_map(|(entry, enter)| enter.as_ref().map(|(_, hits)| (entry, hits)))
            .map(|(entry, hits)| self.dir(&entry.fs_path, &entry.path, hits))
            .collect::<Result<_, ContextError>>()?;
        let mut subtrees = subtrees.into_iter();
        for (entry, enter) in children {
            let Some((excluded, _)) = enter else {
                found.entries.push(entry);
                continue;
            };
            let inner = subtrees.next().expect("one subtree per directory entered");
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
    let mut path = String::with_capacity(dir.len() + 1 + name.len());
    if !dir.is_empty() {
        path.push_str(dir);
        path.push('/');
    }
    path.push_str(&name);
    path
}

/// `root` joined with a context-relative path.
pub(crate) fn absolute(root: &Path, fs_path: &Path) -> PathBuf {
    if fs_path.as_os_str().is_empty() { root.to_path_buf() } else { root.join(fs_path) }
}
