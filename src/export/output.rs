//! A build's `--output` forms, written from an image in the store.
//!
//! - [`Output::parse`]: `type=docker|oci|tar|local,dest=…`, or a directory.
//! - `type=docker` / `type=oci`: the archive `hoist save` writes (a
//!   docker-archive that is also an OCI layout).
//! - `type=local`: the final filesystem as a directory.
//! - `type=tar`: the final filesystem as one tar.
//!
//! Files are written beside their destination and renamed into place.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::ExportError;
use super::archive::{self, SaveItem};
use crate::image::reference::Reference;
use crate::layer::{Compression, ExtractOptions, Ownership};
use crate::store::{Image, Store};

/// Where a build's result goes besides the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `type=docker` or `type=oci`: an image archive.
    Archive(PathBuf),
    /// `type=local`: the filesystem as a directory.
    Local(PathBuf),
    /// `type=tar`: the filesystem as a tar.
    RootfsTar(PathBuf),
    /// `type=image` (`type=registry` is `push=true`): the image in the
    /// store under `names` (the build's tags when empty), pushed to their
    /// registries when `push`.
    Image {
        /// Names besides the build's tags.
        names: Vec<Reference>,
        /// Push the names to their registries.
        push: bool,
    },
}

impl Output {
    /// Parses an `--output` value as `docker build` takes it: a directory,
    /// or `type=…,dest=…`, `type=image,name=…[,push=true]`,
    /// `type=registry,name=…` (`compression` is accepted; the store keeps
    /// layers uncompressed and a push compresses them).
    pub fn parse(text: &str) -> Result<Output, String> {
        if !text.contains('=') {
            return Ok(Output::Local(PathBuf::from(text)));
        }
        let mut kind = None;
        let mut dest = None;
        let mut names = Vec::new();
        let mut push = None;
        for field in text.split(',') {
            match field.split_once('=') {
                Some(("type", v)) => kind = Some(v.to_string()),
                Some(("dest", v)) => dest = Some(PathBuf::from(v)),
                Some(("name", v)) => {
                    names.push(Reference::parse(v).map_err(|e| format!("--output {text}: name {v:?}: {e}"))?)
                }
                Some(("push", v)) => {
                    push = Some(
                        v.parse::<bool>().map_err(|_| format!("--output {text}: push is true or false"))?,
                    )
                }
                Some(("compression", _)) => {}
                _ => return Err(format!("--output {text}: unknown field {field:?}")),
            }
        }
        let file = |dest: Option<PathBuf>| dest.ok_or_else(|| format!("--output {text}: dest=… is required"));
        match kind.as_deref() {
            Some("docker") | Some("oci") => Ok(Output::Archive(file(dest)?)),
            Some("local") => Ok(Output::Local(file(dest)?)),
            Some("tar") => Ok(Output::RootfsTar(file(dest)?)),
            Some("image") => Ok(Output::Image { names, push: push.unwrap_or(false) }),
            Some("registry") => Ok(Output::Image { names, push: push.unwrap_or(true) }),
            Some(other) => Err(format!(
                "--output type={other} is not supported: use docker, oci, local, tar, image or registry"
            )),
            None => Err(format!("--output {text}: type=… is required")),
        }
    }

    /// Writes the output for `image`, known by `names`.
    pub fn write(&self, store: &Store, image: &Image, names: &[Reference]) -> Result<(), ExportError> {
        match self {
            Output::Archive(dest) => write_archive(store, image, names, dest),
            Output::Local(dest) => write_local(store, image, dest),
            Output::RootfsTar(dest) => write_rootfs_tar(store, image, dest),
            Output::Image { names: extra, .. } => {
                for name in extra.iter().filter(|n| !names.contains(n)) {
                    store.tag(&image.id().to_string(), name)?;
                }
                Ok(())
            }
        }
    }
}

/// `-o type=docker|oci,dest=FILE`: the archive `hoist save` writes.
pub fn write_archive(
    store: &Store,
    image: &Image,
    names: &[Reference],
    dest: &Path,
) -> Result<(), ExportError> {
    let items = [SaveItem { image: image.clone(), names: names.to_vec() }];
    write_beside(dest, |file| {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        archive::save(store, &items, &mut out)?;
        out.flush().map_err(io_at(dest))?;
        Ok(())
    })
}

/// `-o type=local,dest=DIR`: the image's filesystem, layer over layer.
/// Rootless, the files are the caller's, as BuildKit's rootless exporter
/// leaves them.
pub fn write_local(store: &Store, image: &Image, dest: &Path) -> Result<(), ExportError> {
    extract_layers(store, image, dest, ExtractOptions::default().ownership)
}

fn extract_layers(
    store: &Store,
    image: &Image,
    dest: &Path,
    ownership: Ownership,
) -> Result<(), ExportError> {
    fs::create_dir_all(dest).map_err(io_at(dest))?;
    let options = ExtractOptions { ownership, ..ExtractOptions::default() };
    for (digest, _) in image.layers() {
        let blob = store.open_blob(&digest)?;
        crate::layer::extract(std::io::BufReader::new(blob), dest, &options)
            .map_err(|source| ExportError::Layer { path: dest.to_path_buf(), source })?;
    }
    Ok(())
}

/// `-o type=tar,dest=FILE`: the image's filesystem as one tar, with the
/// owners the image records. Rootless, the filesystem is laid out and read
/// back by the root of a user namespace (owners within the subordinate
/// ids survive the trip), which also removes it.
pub fn write_rootfs_tar(store: &Store, image: &Image, dest: &Path) -> Result<(), ExportError> {
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir = tempfile::Builder::new().prefix(".hoist-rootfs-").tempdir_in(parent).map_err(io_at(parent))?;
    let write = |ownership: Ownership| -> Result<(), ExportError> {
        extract_layers(store, image, dir.path(), ownership)?;
        write_beside(dest, |file| {
            crate::layer::write_dir(dir.path(), file, Compression::None)
                .map_err(|source| ExportError::Layer { path: dest.to_path_buf(), source })?;
            Ok(())
        })
    };
    if !crate::idmap::rootless() {
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
        Ok(Ok(_)) => Ok(()),
        Ok(Err(message)) => Err(ExportError::NamespaceHelper { path: dest.to_path_buf(), message }),
        Err(e) => Err(ExportError::NamespaceHelper { path: dest.to_path_buf(), message: e.to_string() }),
    }
}

/// Writes `dest` through a temporary file beside it, synced and renamed
/// into place, so that an interrupted write never leaves a truncated file
/// under the final name.
pub(super) fn write_beside(
    dest: &Path,
    write: impl FnOnce(&mut File) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("output");
    let temp = dest.with_file_name(format!(".{name}.hoist-{}", std::process::id()));
    let result = File::create(&temp)
        .map_err(io_at(&temp))
        .and_then(|mut file| {
            write(&mut file)?;
            file.sync_all().map_err(io_at(&temp))
        })
        .and_then(|()| fs::rename(&temp, dest).map_err(io_at(dest)));
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io { path: path.to_path_buf(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse_as_docker_build_takes_them() {
        assert_eq!(Output::parse("out"), Ok(Output::Local("out".into())));
        assert_eq!(Output::parse("type=docker,dest=a.tar"), Ok(Output::Archive("a.tar".into())));
        assert_eq!(Output::parse("type=oci,dest=a.tar,name=x"), Ok(Output::Archive("a.tar".into())));
        assert_eq!(Output::parse("type=tar,dest=r.tar"), Ok(Output::RootfsTar("r.tar".into())));
        assert_eq!(Output::parse("type=local,dest=d"), Ok(Output::Local("d".into())));
        let name = Reference::parse("r:5000/a:1").unwrap();
        assert_eq!(
            Output::parse("type=image,name=r:5000/a:1,push=true"),
            Ok(Output::Image { names: vec![name.clone()], push: true })
        );
        assert_eq!(
            Output::parse("type=registry,name=r:5000/a:1"),
            Ok(Output::Image { names: vec![name], push: true })
        );
        assert_eq!(Output::parse("type=image"), Ok(Output::Image { names: vec![], push: false }));
    }

    #[test]
    fn bad_outputs_say_what_is_missing() {
        assert!(Output::parse("type=docker").unwrap_err().contains("dest="));
        assert!(Output::parse("dest=x").unwrap_err().contains("type="));
        assert!(Output::parse("type=bogus,dest=x").unwrap_err().contains("not supported"));
        assert!(Output::parse("type=image,name=UPPER").unwrap_err().contains("name"));
        assert!(Output::parse("type=tar,dest=x,color=red").unwrap_err().contains("unknown field"));
    }

    #[test]
    fn an_interrupted_write_leaves_nothing_under_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.tar");
        let failed = write_beside(&dest, |file| {
            file.write_all(b"half").unwrap();
            Err(ExportError::NamespaceHelper { path: dest.clone(), message: "stop".into() })
        });
        assert!(failed.is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        write_beside(&dest, |file| file.write_all(b"whole").map_err(io_at(&dest))).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"whole");
    }
}
