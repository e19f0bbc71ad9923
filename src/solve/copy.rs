//! COPY, ADD and WORKDIR: layers written straight from their sources.
//!
//! - The destination is resolved against the stage's filesystem (a
//!   [`MergedView`] of its layers); no root filesystem is materialised.
//! - Files keep their mode and mtime; their owner is root for the context,
//!   kept for `--from`, or `--chown` (resolved in the image's passwd/group).
//! - ADD unpacks a local tar archive (plain, gzip, bzip2, xz, zstd).
//! - Rootless, the layer is written by the user namespace's root, in a
//!   forked helper, so that files only a subordinate id can read are read.

use std::path::Path;

use super::copy_plan::{CopyPlan, InlineFile};
use super::sources::{archive_reader, context_sources, dir_source, view_sources};
use super::{Build, BuiltLayer, StepError, now_seconds, user};
use crate::layer::{Compression, LayerSummary};
use crate::plan::{CopyFrom, CopyOp, WorkdirOp};
use crate::sandbox;
use crate::snapshot::MergedView;

impl Build<'_> {
    /// WORKDIR: the directory and its parents, as a layer (BuildKit's
    /// WORKDIR always makes one, even when the directory existed).
    pub(super) fn execute_workdir(
        &self,
        op: &WorkdirOp,
        layers: &[BuiltLayer],
    ) -> Result<BuiltLayer, StepError> {
        self.view_of(layers)?;
        self.store_layer(|out| {
            let view = self.view_of(layers)?;
            let owner = match &op.user {
                Some(user) => Some(owner_in(&view, user)?),
                None => None,
            };
            let mut plan = CopyPlan::new(&view, owner, None, now_seconds());
            plan.ensure_dir(&op.path)?;
            Ok(plan.write(out)?)
        })
    }

    /// COPY or ADD on `layers`; `sources` are the layers `--from` reads.
    pub(super) fn execute_copy(
        &self,
        op: &CopyOp,
        layers: &[BuiltLayer],
        sources: &[BuiltLayer],
    ) -> Result<BuiltLayer, StepError> {
        // Everything the helper reads is unpacked and walked here first: a
        // forked helper must not wait on a lock another thread held.
        self.view_of(layers)?;
        match op.from {
            CopyFrom::Context if !op.sources.is_empty() => drop(self.context()?),
            CopyFrom::Context => {}
            _ => drop(self.view_of(sources)?),
        }
        self.store_layer(|out| self.write_copy(op, layers, sources, out))
    }

    /// Writes the layer of a COPY or ADD to `out`.
    fn write_copy(
        &self,
        op: &CopyOp,
        layers: &[BuiltLayer],
        from_layers: &[BuiltLayer],
        out: &mut dyn std::io::Write,
    ) -> Result<LayerSummary, StepError> {
        let view = self.view_of(layers)?;
        let owner = match &op.chown {
            Some(spec) => Some(owner_in(&view, spec)?),
            None => None,
        };
        let mut plan = CopyPlan::new(&view, owner, op.chmod, now_seconds());
        let mut unpacked = Vec::new();
        match op.from {
            CopyFrom::Context => {
                if !op.sources.is_empty() {
                    let context = self.context()?;
                    let sources = context_sources(&context, &op.sources)?;
                    let many = sources.len() > 1;
                    for source in &sources {
                        if op.unpack_archives
                            && !source.is_dir()
                            && let Some(dir) = self.unpack_archive(&source.entries[0].fs_path)?
                        {
                            let extracted = dir_source(dir.path(), "")?;
                            plan.add_source(&extracted, &op.dest, true, true)?;
                            unpacked.push(dir);
                            continue;
                        }
                        plan.add_source(source, &op.dest, op.dest_is_dir || many, false)?;
                    }
                }
            }
            CopyFrom::Stage(_) | CopyFrom::Image(_) => {
                let from_view = self.view_of(from_layers)?;
                let mut all = Vec::new();
                for pattern in &op.sources {
                    all.extend(view_sources(&from_view, pattern)?);
                }
                let many = all.len() > 1;
                for source in &all {
                    plan.add_source(source, &op.dest, op.dest_is_dir || many, true)?;
                }
            }
        }
        let now = now_seconds();
        for file in &op.inline_files {
            let file = InlineFile {
                name: file.name.clone(),
                data: file.content.clone().into_bytes(),
                mode: file.mode,
                mtime: now,
            };
            plan.add_inline(&file, &op.dest, op.dest_is_dir)?;
        }
        let summary = plan.write(out)?;
        drop(unpacked);
        Ok(summary)
    }

    /// ADD of a local tar archive: extracted into a temporary directory;
    /// `None` when the file is not an archive.
    fn unpack_archive(&self, path: &Path) -> Result<Option<tempfile::TempDir>, StepError> {
        let Some(reader) = archive_reader(path).map_err(StepError::io(path))? else {
            return Ok(None);
        };
        let tmp = self.options.store.root().join("tmp");
        let dir = tempfile::Builder::new().prefix("add-").tempdir_in(&tmp).map_err(StepError::io(&tmp))?;
        let options =
            crate::layer::ExtractOptions { ownership: self.archive_ownership.clone(), ..Default::default() };
        crate::layer::extract(reader, dir.path(), &options)
            .map_err(|e| StepError::failed(format!("{}: {e}", path.display())))?;
        Ok(Some(dir))
    }

    /// Stores the layer `write` makes from layer dirs (COPY, ADD, WORKDIR).
    /// Rootless, a file may sit in a directory only a subordinate id can
    /// enter, so `write` runs as the user namespace's root, where owners
    /// read as the image's. It runs in a forked child then: the layer dirs
    /// it reads must be unpacked, and the context walked, before the call.
    /// Where no user namespace can be made, the layer dirs hold only the
    /// caller's files, and `write` runs here.
    fn store_layer(
        &self,
        write: impl FnOnce(&mut dyn std::io::Write) -> Result<LayerSummary, StepError>,
    ) -> Result<BuiltLayer, StepError> {
        let mut blob = self.options.store.blob_writer()?;
        let summary = if crate::idmap::rootless() && sandbox::namespace_available() {
            as_namespace_root(&mut blob, write)?
        } else {
            write(&mut blob)?
        };
        let digest = blob.commit(Some(summary.diff_id))?;
        Ok(BuiltLayer { digest, size: summary.uncompressed_size })
    }
}

/// `user[:group]` as numeric ids, looked up in the image's own files.
fn owner_in(view: &MergedView, spec: &str) -> Result<(u32, u32), StepError> {
    let read = |path: &str| view.read_file(path).ok().flatten().unwrap_or_default();
    let (passwd, group) = (read("/etc/passwd"), read("/etc/group"));
    user::resolve_owner(spec, &String::from_utf8_lossy(&passwd), &String::from_utf8_lossy(&group))
        .map_err(StepError::failed)
}

/// Runs `write` (a layer, written to the pipe it gets) as the root of the
/// rootless user namespace, storing the layer in `blob`. The helper is a
/// forked process: a step's failure comes back as its message and hint.
fn as_namespace_root(
    blob: &mut impl std::io::Write,
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<LayerSummary, StepError>,
) -> Result<LayerSummary, StepError> {
    let done = sandbox::as_namespace_root(
        |out| match write(out) {
            Ok(summary) => Ok(summary.to_line().into_bytes()),
            Err(error) => Err(format!("{error}\0{}", error.hint().unwrap_or_default())),
        },
        |chunk| blob.write_all(chunk),
    );
    match done {
        Ok(Ok(line)) => LayerSummary::from_line(&line, Compression::None)
            .ok_or_else(|| StepError::NamespaceHelper("its reply is garbled".into())),
        Ok(Err(text)) => {
            let (message, hint) = text.split_once('\0').unwrap_or((text.as_str(), ""));
            Err(StepError::Failed {
                message: message.to_string(),
                hint: (!hint.is_empty()).then(|| hint.to_string()),
            })
        }
        Err(e) => Err(StepError::NamespaceHelper(e.to_string())),
    }
}
