//! The layer a COPY, ADD or WORKDIR writes, planned entry by entry from its sources.
//!
//! - [`CopyPlan`]: the layer's entries by path, resolved against the stage's
//!   filesystem ([`MergedView`]) without materialising a root filesystem;
//!   [`CopyPlan::write`] writes them as a tar.
//! - [`Source`], [`SourceEntry`], [`InlineFile`]: what is copied: files found
//!   in the context, a stage or an image, and heredocs.
//! - [`CopyError`]: why a copy cannot be planned or written.
//!
//! An existing destination directory is copied into, symlinked directories
//! on the way are followed inside the image, directories that exist are
//! carried into the layer with their metadata (as overlayfs copies them up)
//! and missing ones are created 0755, owned like the files when `--chown` is
//! given. Files keep their mode and mtime; their owner is root for the
//! context, kept for `--from`, or `--chown`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::layer::{Entry, EntryKind, LayerError, LayerSummary, LayerWriter};

use crate::snapshot::{MergedView, components};

/// A file to copy, with its name relative to the source it was found in
/// (empty for the source itself).
#[derive(Debug, Clone)]
pub struct SourceEntry {
    /// The name relative to the source, `/`-separated; empty for the
    /// source itself.
    pub rel: String,
    /// Where the file is read from on the host.
    pub fs_path: PathBuf,
    /// The metadata of `fs_path` itself (a symlink is not followed).
    pub metadata: std::fs::Metadata,
}

/// One matched source: a file, or a directory whose contents are copied.
#[derive(Debug, Clone)]
pub struct Source {
    /// The base name it is copied under when the destination is a directory.
    pub name: String,
    /// The source itself first, then (for a directory) its descendants,
    /// parents before children.
    pub entries: Vec<SourceEntry>,
}

impl Source {
    /// Whether the source is a directory, whose contents are copied.
    pub fn is_dir(&self) -> bool {
        self.entries.first().is_some_and(|e| e.metadata.is_dir())
    }
}

/// An in-memory file (a heredoc).
#[derive(Debug, Clone)]
pub struct InlineFile {
    /// The file's name: the heredoc's terminator word.
    pub name: String,
    /// The content.
    pub data: Vec<u8>,
    /// Permission bits, used unless `--chmod` is given.
    pub mode: u32,
    /// Modification time, in whole seconds since the epoch.
    pub mtime: i64,
}

#[derive(Debug, Clone)]
enum Content {
    None,
    File(PathBuf),
    Bytes(Vec<u8>),
}

/// What a COPY does, before it is written.
#[derive(Debug)]
pub struct CopyPlan<'v> {
    view: &'v MergedView,
    entries: BTreeMap<String, (Entry, Content)>,
    /// Owner for created directories and copied files (`--chown`).
    owner: Option<(u32, u32)>,
    chmod: Option<u32>,
    now: i64,
}

/// Why a copy could not be planned, or its layer written.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A copy that cannot be done (a file onto a directory, a path through a
    /// file, a socket); the text says which.
    #[error("{0}")]
    Invalid(String),
    /// Reading the image's filesystem or a source failed.
    #[error("{path}: {source}")]
    Io {
        /// The path read: in the image, or a source on the host.
        path: String,
        /// The system's error.
        source: io::Error,
    },
    /// Reading a source's metadata or writing the layer failed.
    #[error(transparent)]
    Layer(#[from] LayerError),
}

fn io_at(path: &str) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |source| CopyError::Io { path: path.to_string(), source }
}

fn key(path: &str) -> String {
    components(path).join("/")
}

impl<'v> CopyPlan<'v> {
    /// An empty plan over `view`: `owner` is `--chown` as (uid, gid),
    /// `chmod` is `--chmod`, and `now` (seconds since the epoch) is the mtime
    /// of the directories it creates.
    pub fn new(
        view: &'v MergedView,
        owner: Option<(u32, u32)>,
        chmod: Option<u32>,
        now: i64,
    ) -> CopyPlan<'v> {
        CopyPlan { view, entries: BTreeMap::new(), owner, chmod, now }
    }

    /// Is `path` (resolved) a directory, in this plan or the image?
    fn is_dir(&self, path: &str) -> Result<Option<bool>, CopyError> {
        if let Some((entry, _)) = self.entries.get(&key(path)) {
            return Ok(Some(entry.kind == EntryKind::Dir));
        }
        Ok(self.view.lookup(path, true).map_err(io_at(path))?.map(|f| f.metadata.is_dir()))
    }

    /// Makes `path` and its parents directories in the layer: existing ones
    /// with their metadata, missing ones new. Returns the resolved path.
    pub fn ensure_dir(&mut self, path: &str) -> Result<String, CopyError> {
        let mut resolved = String::new();
        for part in components(path) {
            let candidate = format!("{resolved}/{part}");
            let candidate = self.view.resolve_parent(&candidate).map_err(io_at(&candidate))?;
            let target = match self.view.lookup(&candidate, true).map_err(io_at(&candidate))? {
                Some(found) => found.path,
                None => candidate.clone(),
            };
            let k = key(&target);
            if let Some((entry, _)) = self.entries.get(&k) {
                if entry.kind != EntryKind::Dir {
                    return Err(CopyError::Invalid(format!("cannot copy to non-directory: {target}")));
                }
            } else {
                match self.view.lookup(&target, false).map_err(io_at(&target))? {
                    Some(found) if found.metadata.is_dir() => {
                        let entry = Entry::from_fs(&found.fs_path, &k)?
                            .ok_or_else(|| CopyError::Invalid(format!("{target} is not a directory")))?;
                        self.entries.insert(k, (entry, Content::None));
                    }
                    Some(_) => {
                        return Err(CopyError::Invalid(format!("cannot copy to non-directory: {target}")));
                    }
                    None => {
                        let mut entry = Entry::new(&k, EntryKind::Dir);
                        entry.mtime = self.now;
                        if let Some((uid, gid)) = self.owner {
                            entry.uid = uid.into();
                            entry.gid = gid.into();
                        }
                        self.entries.insert(k, (entry, Content::None));
                    }
                }
            }
            resolved = target;
        }
        Ok(if resolved.is_empty() { "/".into() } else { resolved })
    }

    /// Where a source named `name` goes: into `dest` when it is (or must
    /// be) a directory, else at `dest` itself.
    pub fn destination_of(&mut self, dest: &str, dest_is_dir: bool, name: &str) -> Result<String, CopyError> {
        if dest_is_dir || self.is_dir(dest)? == Some(true) {
            let dir = self.ensure_dir(dest)?;
            return Ok(format!("{}/{name}", dir.trim_end_matches('/')));
        }
        let parts = components(dest);
        let parent = format!("/{}", parts[..parts.len().saturating_sub(1)].join("/"));
        let dir = self.ensure_dir(&parent)?;
        Ok(format!("{}/{}", dir.trim_end_matches('/'), parts.last().map(String::as_str).unwrap_or("")))
    }

    /// Copies `source` to `dest`: a directory's contents into `dest`, a file
    /// into or as `dest`. `keep_owner` keeps the source's uid/gid (COPY
    /// --from); otherwise files belong to root unless `--chown`.
    pub fn add_source(
        &mut self,
        source: &Source,
        dest: &str,
        dest_is_dir: bool,
        keep_owner: bool,
    ) -> Result<(), CopyError> {
        let Some(root) = source.entries.first() else { return Ok(()) };
        // A directory the copy creates is 0755 whatever the source's mode
        // (BuildKit's mkdir -p), owned like the files with --chown.
        let base = if root.metadata.is_dir() {
            self.ensure_dir(dest)?
        } else {
            let target = self.destination_of(dest, dest_is_dir, &source.name)?;
            if self.is_dir(&target)? == Some(true) {
                return Err(CopyError::Invalid(format!("cannot replace directory {target} with a file")));
            }
            let k = key(&target);
            let entry = self.entry_for(root, &k, keep_owner)?;
            self.insert(k, entry, root);
            return Ok(());
        };
        for child in &source.entries[1..] {
            let k = key(&format!("{base}/{}", child.rel));
            let entry = self.entry_for(child, &k, keep_owner)?;
            self.insert(k, entry, child);
        }
        Ok(())
    }

    fn insert(&mut self, k: String, entry: Entry, from: &SourceEntry) {
        let content = if matches!(entry.kind, EntryKind::File { .. }) {
            Content::File(from.fs_path.clone())
        } else {
            Content::None
        };
        // A later source replaces an earlier one at the same path, and a
        // file replacing a directory takes its children away.
        if entry.kind != EntryKind::Dir {
            let prefix = format!("{k}/");
            let nested: Vec<String> = self
                .entries
                .range(prefix.clone()..)
                .take_while(|(p, _)| p.starts_with(&prefix))
                .map(|(p, _)| p.clone())
                .collect();
            for p in nested {
                self.entries.remove(&p);
            }
        }
        self.entries.insert(k, (entry, content));
    }

    /// Adds an in-memory file (a heredoc) into or as `dest`.
    pub fn add_inline(&mut self, file: &InlineFile, dest: &str, dest_is_dir: bool) -> Result<(), CopyError> {
        let target = self.destination_of(dest, dest_is_dir, &file.name)?;
        let k = key(&target);
        let mut entry = Entry::new(&k, EntryKind::File { size: file.data.len() as u64 });
        entry.mode = self.chmod.unwrap_or(file.mode);
        entry.mtime = file.mtime;
        if let Some((uid, gid)) = self.owner {
            entry.uid = uid.into();
            entry.gid = gid.into();
        }
        self.entries.insert(k, (entry, Content::Bytes(file.data.clone())));
        Ok(())
    }

    fn entry_for(&self, from: &SourceEntry, k: &str, keep_owner: bool) -> Result<Entry, CopyError> {
        let mut entry = Entry::from_fs(&from.fs_path, k)?.ok_or_else(|| {
            CopyError::Invalid(format!("{}: a socket cannot be copied", from.fs_path.display()))
        })?;
        if let Some((uid, gid)) = self.owner {
            entry.uid = uid.into();
            entry.gid = gid.into();
        } else if !keep_owner {
            entry.uid = 0;
            entry.gid = 0;
        }
        if let Some(mode) = self.chmod
            && !matches!(entry.kind, EntryKind::Symlink { .. })
        {
            entry.mode = mode;
        }
        Ok(entry)
    }

    /// Writes the layer.
    pub fn write<W: io::Write>(self, out: W) -> Result<LayerSummary, CopyError> {
        let mut layer = LayerWriter::new(out, crate::layer::Compression::None)?;
        for (_, (entry, content)) in self.entries {
            match content {
                Content::None => layer.append(&entry, io::empty())?,
                Content::Bytes(bytes) => layer.append(&entry, bytes.as_slice())?,
                Content::File(path) => {
                    let file = open_nofollow(&path)
                        .map_err(|source| CopyError::Io { path: path.display().to_string(), source })?;
                    layer.append(&entry, file)?;
                }
            }
        }
        Ok(layer.finish()?)
    }
}

fn open_nofollow(path: &Path) -> io::Result<impl Read> {
    let fd = rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    Ok(File::from(fd))
}
