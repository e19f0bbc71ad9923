//! The build context: what `COPY` and `ADD` may read.
//!
//! - [`Context::open`] walks the context directory once (directories in
//!   parallel), drops what the `.dockerignore` excludes and loads a stat cache
//!   of content digests.
//! - `<Dockerfile>.dockerignore` beside the Dockerfile wins over the context's
//!   `.dockerignore`; an excluded Dockerfile or ignore file is read for the
//!   build but, as Docker documents, not copied by COPY or ADD.
//! - [`Context::resolve`] turns COPY/ADD sources (paths relative to the root,
//!   `..` clamped, Go wildcards, symlinks followed inside the context) into
//!   [`Selection`]s or a "not found, did you mean" error.
//! - [`Context::digest_of`] is the blake3 digest of exactly the selected files
//!   (path, type, mode, link target, content — not times or ownership),
//!   reading only files the cache cannot vouch for.
//! - [`Context::walk_selection`] yields the selected entries in tree order for
//!   the COPY executor; [`Context::save_cache`] persists the digests for the
//!   next build.
//! - [`IgnoreMatcher`] is Docker's `.dockerignore` matcher on its own.
//! - Contexts sent as a tar stream are extracted by the caller (with the
//!   `layer` module's safe extraction) and opened as a directory.

mod digest;
mod dockerignore;
mod entry;
mod error;
mod pattern;
mod selection;
mod stat_cache;
mod walk;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use dockerignore::{IgnoreMatcher, read_patterns};
pub use entry::{ContextEntry, EntryKind};
pub use error::ContextError;
pub use pattern::PatternError;
pub use selection::Selection;

use digest::HashCounters;
use entry::{is_within, tree_order};
use error::io_error;
use stat_cache::StatCache;
use walk::{Walk, absolute};

/// How [`Context::open_with`] opens a context.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Where the stat cache lives (`<store>/cache`); `None` hashes everything.
    pub cache_dir: Option<PathBuf>,
    /// A cached digest is trusted only for files whose mtime and ctime are
    /// older than the previous scan's start by this much. Two seconds covers
    /// the coarsest timestamps in use (FAT); tests lower it.
    pub racy_margin: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { cache_dir: None, racy_margin: Duration::from_secs(2) }
    }
}

/// Counters for one opened context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContextStats {
    /// Entries in the context (excluding the root).
    pub entries: usize,
    /// Excluded entries seen by the walk; an excluded directory that was not
    /// entered counts once.
    pub ignored: usize,
    /// Files read and hashed since opening.
    pub files_hashed: u64,
    /// Bytes of content read and hashed since opening.
    pub bytes_hashed: u64,
    /// Files whose digest the stat cache vouched for at open.
    pub files_from_cache: usize,
}

/// An entry of a selection as the COPY executor needs it.
#[derive(Debug)]
pub struct SelectedEntry<'a> {
    /// Relative to the selection's root (`""` for the root itself).
    pub relative: &'a str,
    /// The entry's file on disk, exact even for non-UTF-8 names.
    pub absolute: PathBuf,
    /// The entry itself.
    pub entry: &'a ContextEntry,
}

/// An opened build context; see the module documentation.
#[derive(Debug)]
pub struct Context {
    root: PathBuf,
    root_entry: ContextEntry,
    /// Tree order (see `entry::tree_order`), so a directory's contents follow it.
    entries: Vec<ContextEntry>,
    ignore_file: Option<PathBuf>,
    matcher: IgnoreMatcher,
    cache_file: Option<PathBuf>,
    scan_started_ns: i64,
    ignored: usize,
    files_from_cache: usize,
    hashed: HashCounters,
}

impl Context {
    /// Opens the context at `root` for the Dockerfile at `dockerfile`
    /// (relative to `root` unless absolute; it need not exist), with the stat
    /// cache in `cache_dir` if given.
    pub fn open(root: &Path, dockerfile: &Path, cache_dir: Option<&Path>) -> Result<Context, ContextError> {
        let options = OpenOptions { cache_dir: cache_dir.map(Path::to_path_buf), ..OpenOptions::default() };
        Context::open_with(root, dockerfile, &options)
    }

    /// Opens the context at `root` for the Dockerfile at `dockerfile`, as
    /// [`Context::open`] does, with the stat cache and its racy margin as
    /// `options` say.
    pub fn open_with(root: &Path, dockerfile: &Path, options: &OpenOptions) -> Result<Context, ContextError> {
        let root = root.canonicalize().map_err(io_error(root))?;
        let root_meta = root.metadata().map_err(io_error(&root))?;
        if !root_meta.is_dir() {
            return Err(ContextError::NotADirectory { path: root });
        }
        let dockerfile =
            if dockerfile.is_absolute() { dockerfile.to_path_buf() } else { root.join(dockerfile) };
        let ignore_file = find_ignore_file(&root, &dockerfile);
        let matcher = match &ignore_file {
            Some(file) => {
                let text = std::fs::read(file).map_err(io_error(file))?;
                IgnoreMatcher::parse(&String::from_utf8_lossy(&text))
                    .map_err(|source| ContextError::IgnorePattern { file: file.clone(), source })?
            }
            None => IgnoreMatcher::default(),
        };

        // Taken before the walk: a file changed after its stat was taken has
        // an mtime/ctime after this, so the next scan will not trust it.
        let scan_started_ns = now_ns();
        let cache_file = options.cache_dir.as_deref().map(|dir| stat_cache::cache_file(dir, &root));
        let walk = Walk { root: &root, matcher: &matcher };
        let (walked, cache) =
            rayon::join(|| walk.run(), || cache_file.as_deref().map(StatCache::load).unwrap_or_default());
        let (entries, ignored) = walked?;

        let mut files_from_cache = 0;
        for (entry, digest) in entries.iter().zip(cache.trusted_digests(&entries, options.racy_margin)) {
            if let Some(digest) = digest {
                let _ = entry.content.set(digest);
                files_from_cache += 1;
            }
        }
        let root_entry = ContextEntry::from_metadata(String::new(), PathBuf::new(), &root_meta, None);
        Ok(Context {
            root,
            root_entry,
            entries,
            ignore_file,
            matcher,
            cache_file,
            scan_started_ns,
            ignored,
            files_from_cache,
            hashed: HashCounters::default(),
        })
    }

    /// The canonical context directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The `.dockerignore` (or `<Dockerfile>.dockerignore`) that applied, if any.
    pub fn ignore_file(&self) -> Option<&Path> {
        self.ignore_file.as_deref()
    }

    /// Every non-excluded entry except the root, in tree order.
    pub fn entries(&self) -> &[ContextEntry] {
        &self.entries
    }

    /// The entry at a context-relative path (`""` is the root).
    pub fn entry(&self, path: &str) -> Option<&ContextEntry> {
        if path.is_empty() {
            return Some(&self.root_entry);
        }
        self.entries.binary_search_by(|e| tree_order(&e.path, path)).ok().map(|i| &self.entries[i])
    }

    /// The entry's file on disk (exact even for non-UTF-8 names).
    pub fn absolute_path(&self, entry: &ContextEntry) -> PathBuf {
        absolute(&self.root, &entry.fs_path)
    }

    /// Resolves COPY/ADD sources, in order; a wildcard source may select
    /// several paths, any source that selects nothing is an error.
    pub fn resolve(&self, sources: &[String]) -> Result<Vec<Selection>, ContextError> {
        let mut selections = Vec::new();
        for source in sources {
            selections.extend(self.resolve_one(source)?);
        }
        Ok(selections)
    }

    /// The selection's entries in tree order, starting with its root; for a
    /// directory, everything inside it that the context holds.
    pub fn walk_selection<'a>(
        &'a self,
        selection: &'a Selection,
    ) -> impl Iterator<Item = SelectedEntry<'a>> + 'a {
        self.selected(selection).map(|(relative, entry)| SelectedEntry {
            relative,
            absolute: self.absolute_path(entry),
            entry,
        })
    }

    /// The blake3 digest of exactly what `selections` select, reading only
    /// files whose digest is not known yet.
    pub fn digest_of(&self, selections: &[Selection]) -> Result<blake3::Hash, ContextError> {
        let mut files: Vec<&ContextEntry> = selections
            .iter()
            .flat_map(|s| self.selected(s).map(|(_, e)| e))
            .filter(|e| e.kind == EntryKind::File)
            .collect();
        // Overlapping sources (`COPY a a/b /x`) must not read a file twice.
        files.sort_unstable_by_key(|e| *e as *const ContextEntry);
        files.dedup_by_key(|e| *e as *const ContextEntry);
        digest::hash_missing(&self.root, &files, &self.hashed)?;
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"hoist context selection v1\0");
        for selection in selections {
            digest::feed_bytes(&mut hasher, selection.path.as_bytes());
            for (relative, entry) in self.selected(selection) {
                digest::feed_entry(&mut hasher, relative, entry);
            }
        }
        Ok(hasher.finalize())
    }

    /// (path relative to the selection root, entry) for what `selection` selects.
    fn selected<'a>(
        &'a self,
        selection: &'a Selection,
    ) -> impl Iterator<Item = (&'a str, &'a ContextEntry)> + 'a {
        let dir = selection.resolved.as_str();
        let (first, inside): (Option<&ContextEntry>, &[ContextEntry]) = match self.entry(dir) {
            None => (None, &[]),
            Some(root) if dir.is_empty() => (Some(root), &self.entries),
            Some(entry) if entry.is_dir() => (Some(entry), self.subtree(dir)),
            Some(entry) => (Some(entry), &[]),
        };
        first.into_iter().chain(inside).map(move |entry| {
            let relative = if dir.is_empty() {
                entry.path.as_str()
            } else {
                entry.path[dir.len()..].trim_start_matches('/')
            };
            (relative, entry)
        })
    }

    /// Writes the stat cache (when opened with a cache dir) atomically. Only
    /// digests known to be current are kept: hashed in this run, or trusted
    /// from the previous cache.
    pub fn save_cache(&self) -> Result<(), ContextError> {
        // Nothing read and everything vouched for by the cache as it is: the
        // file on disk is still right (its older scan time only makes it
        // stricter), so a no-op rebuild writes nothing.
        if self.hashed.files.load(Ordering::Relaxed) == 0 && self.files_from_cache > 0 {
            return Ok(());
        }
        match &self.cache_file {
            Some(file) => stat_cache::save(file, self.scan_started_ns, &self.entries),
            None => Ok(()),
        }
    }

    /// The counters so far: entries, exclusions, and hashing since opening.
    pub fn stats(&self) -> ContextStats {
        ContextStats {
            entries: self.entries.len(),
            ignored: self.ignored,
            files_hashed: self.hashed.files.load(Ordering::Relaxed),
            bytes_hashed: self.hashed.bytes.load(Ordering::Relaxed),
            files_from_cache: self.files_from_cache,
        }
    }

    /// Everything strictly inside the directory `dir`.
    fn subtree(&self, dir: &str) -> &[ContextEntry] {
        let start = self.entries.partition_point(|e| tree_order(&e.path, dir).is_le());
        let len = self.entries[start..].partition_point(|e| is_within(&e.path, dir));
        &self.entries[start..start + len]
    }

    /// The direct children of the directory `dir` (`""` is the root).
    pub(crate) fn children<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a ContextEntry> + 'a {
        let inside = if dir.is_empty() { &self.entries[..] } else { self.subtree(dir) };
        let skip = if dir.is_empty() { 0 } else { dir.len() + 1 };
        inside.iter().filter(move |e| !e.path[skip..].contains('/'))
    }

    pub(crate) fn is_dir(&self, path: &str) -> bool {
        self.entry(path).is_some_and(ContextEntry::is_dir)
    }
}

/// `<Dockerfile>.dockerignore` beside the Dockerfile, else `<root>/.dockerignore`.
fn find_ignore_file(root: &Path, dockerfile: &Path) -> Option<PathBuf> {
    let beside = dockerfile.file_name().map(|name| {
        let mut name = name.to_os_string();
        name.push(".dockerignore");
        dockerfile.with_file_name(name)
    });
    [beside, Some(root.join(".dockerignore"))].into_iter().flatten().find(|p| p.is_file())
}

/// Now, in nanoseconds since the Unix epoch (0 if the clock is before it).
fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// Go's `filepath.Match` on one path component, the way COPY wildcards
/// match names (`*`, `?`, `[a-z]`, `\` escapes); an invalid pattern
/// matches nothing. Used for `COPY --from` sources, which are not in the
/// context.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    pattern::ComponentGlob::compile(pattern).is_ok_and(|glob| glob.matches(name))
}
