//! Where a build's result goes: an image in the store (config and manifest
//! written, tags added), and from there the `--output` forms: a
//! docker-archive (which is also an OCI layout, so it serves `type=oci`
//! too), the final filesystem as a directory, or as one tar.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::image::archive::{self, SaveItem};
use crate::image::reference::Reference;
use crate::layer::{Compression, ExtractOptions, Ownership};
use crate::store::{Image, Store};

use super::{BuiltStage, SolveError};

/// Writes the stage's config and manifest and tags the image.
pub fn commit_image(store: &Store, built: &BuiltStage, tags: &[Reference]) -> Result<Image, SolveError> {
    let config_bytes = serde_json::to_vec(&built.config).expect("config serialises");
    let config_digest = store.put_blob(&config_bytes)?;
    let layers: Vec<_> = built.layers.iter().map(|l| (l.digest, l.size)).collect();
    let descriptor = store.write_manifest(&config_digest, &layers)?;
    Ok(store.add_image(&descriptor, tags)?)
}

/// `-o type=docker|oci,dest=FILE`: the archive `hoist save` writes.
pub fn write_archive(
    store: &Store,
    image: &Image,
    names: &[Reference],
    dest: &Path,
) -> Result<(), SolveError> {
    let io = |e: std::io::Error| SolveError::Other(format!("{}: {e}", dest.display()));
    let temp = temp_beside(dest);
    let file = File::create(&temp).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let items = [SaveItem { image: image.clone(), names: names.to_vec() }];
    archive::save(store, &items, &mut out).map_err(|e| SolveError::Other(e.to_string()))?;
    out.flush().map_err(io)?;
    out.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)?;
    fs::rename(&temp, dest).map_err(io)
}

/// `-o type=local,dest=DIR`: the image's filesystem, layer over layer.
/// Rootless, the files are the caller's, as BuildKit's rootless exporter
/// leaves them.
pub fn write_local(store: &Store, image: &Image, dest: &Path) -> Result<(), SolveError> {
    extract_layers(store, image, dest, ExtractOptions::default().ownership)
}

fn extract_layers(store: &Store, image: &Image, dest: &Path, ownership: Ownership) -> Result<(), SolveError> {
    fs::create_dir_all(dest).map_err(|e| SolveError::Other(format!("{}: {e}", dest.display())))?;
    let options = ExtractOptions { ownership, ..ExtractOptions::default() };
    for (digest, _) in image.layers() {
        let blob = store.open_blob(&digest)?;
        crate::layer::extract(std::io::BufReader::new(blob), dest, &options)
            .map_err(|e| SolveError::Other(format!("writing {}: {e}", dest.display())))?;
    }
    Ok(())
}

/// `-o type=tar,dest=FILE`: the image's filesystem as one tar, with the
/// owners the image records. Rootless, the filesystem is laid out and read
/// back by the root of a user namespace (owners within the subordinate
/// ids survive the trip), which also removes it.
pub fn write_rootfs_tar(store: &Store, image: &Image, dest: &Path) -> Result<(), SolveError> {
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir = tempfile::Builder::new()
        .prefix(".hoist-rootfs-")
        .tempdir_in(parent)
        .map_err(|e| SolveError::Other(format!("{}: {e}", parent.display())))?;
    let write = |ownership: Ownership| -> Result<(), SolveError> {
        extract_layers(store, image, dir.path(), ownership)?;
        let io = |e: std::io::Error| SolveError::Other(format!("{}: {e}", dest.display()));
        let temp = temp_beside(dest);
        let file = File::create(&temp).map_err(io)?;
        crate::layer::write_dir(dir.path(), &file, Compression::None)
            .map_err(|e| SolveError::Other(format!("{}: {e}", dest.display())))?;
        file.sync_all().map_err(io)?;
        fs::rename(&temp, dest).map_err(io)
    };
    if !crate::sandbox::rootless() {
        return write(Ownership::Preserve);
    }
    if !crate::sandbox::namespace_available() {
        // No user namespace here: the owners cannot be kept.
        return write(Ownership::Ignore);
    }
    // Asked here: inside, this process is the namespace's root.
    let ownership = crate::snapshot::namespace_ownership();
    let done = crate::sandbox::as_namespace_root(
        |_| {
            let written = write(ownership).map_err(|e| e.to_string());
            // What the namespace's root made, only it can remove.
            let removed = crate::snapshot::remove_tree(dir.path()).map_err(|e| e.to_string());
            written.and(removed).map(|()| Vec::new())
        },
        |_| Ok(()),
    );
    match done {
        Ok(result) => result.map(drop).map_err(SolveError::Other),
        Err(e) => {
            Err(SolveError::Other(format!("{}: the user-namespace helper failed: {e}", dest.display())))
        }
    }
}

fn temp_beside(dest: &Path) -> std::path::PathBuf {
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("output");
    dest.with_file_name(format!(".{name}.hoist-{}", std::process::id()))
}
