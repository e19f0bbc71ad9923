mod raw_tar;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use hoist::layer::{Compression, Entry, EntryKind, ExtractOptions, LayerWriter, extract};
use raw_tar::RawTar;

/// A destination holding what lower layers left: `a/old`, `a/sub/deep`,
/// `a/keepname`, `b`, `c/child`.
fn lower() -> tempfile::TempDir {
    let dest = tempfile::tempdir().unwrap();
    let p = dest.path();
    fs::create_dir_all(p.join("a/sub")).unwrap();
    fs::write(p.join("a/old"), "lower").unwrap();
    fs::write(p.join("a/sub/deep"), "lower").unwrap();
    fs::write(p.join("a/keepname"), "lower").unwrap();
    fs::write(p.join("b"), "lower").unwrap();
    fs::create_dir(p.join("c")).unwrap();
    fs::write(p.join("c/child"), "lower").unwrap();
    dest
}

fn apply(dest: &Path, tar: &[u8]) {
    extract(tar, dest, &ExtractOptions::default()).unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[test]
fn whiteout_deletes_a_file_from_lower_layers() {
    let dest = lower();
    apply(dest.path(), &RawTar::new().file("a/.wh.old", b"").finish());
    assert_eq!(names(&dest.path().join("a")), ["keepname", "sub"]);
}

#[test]
fn whiteout_deletes_a_whole_directory() {
    let dest = lower();
    apply(dest.path(), &RawTar::new().file(".wh.a", b"").finish());
    assert_eq!(names(dest.path()), ["b", "c"]);
}

#[test]
fn whiteout_of_a_missing_path_changes_nothing() {
    let dest = lower();
    apply(dest.path(), &RawTar::new().file("nowhere/.wh.x", b"").file(".wh.y", b"").finish());
    assert_eq!(names(dest.path()), ["a", "b", "c"]);
    assert!(!dest.path().join("nowhere").exists());
}

#[test]
fn whiteout_never_deletes_what_the_same_layer_adds() {
    for tar in [
        RawTar::new().file("b", b"new").file(".wh.b", b"").finish(),
        RawTar::new().file(".wh.b", b"").file("b", b"new").finish(),
    ] {
        let dest = lower();
        apply(dest.path(), &tar);
        assert_eq!(fs::read(dest.path().join("b")).unwrap(), b"new");
    }
}

#[test]
fn whiteout_files_are_not_extracted() {
    let dest = lower();
    apply(dest.path(), &RawTar::new().file("a/.wh.old", b"").dir("c/").file("c/.wh..wh..opq", b"").finish());
    assert!(!dest.path().join("a/.wh.old").exists());
    assert!(!dest.path().join("c/.wh..wh..opq").exists());
}

#[test]
fn opaque_marker_first_hides_lower_contents_and_keeps_new_ones() {
    let dest = lower();
    let tar = RawTar::new()
        .dir("a/")
        .file("a/.wh..wh..opq", b"")
        .file("a/new", b"layer")
        .file("a/keepname", b"layer")
        .finish();
    apply(dest.path(), &tar);
    assert_eq!(names(&dest.path().join("a")), ["keepname", "new"]);
    assert_eq!(fs::read(dest.path().join("a/keepname")).unwrap(), b"layer");
}

#[test]
fn opaque_marker_last_hides_lower_contents_and_keeps_new_ones() {
    let dest = lower();
    let tar = RawTar::new()
        .dir("a/")
        .file("a/new", b"layer")
        .dir("a/sub/")
        .file("a/sub/fresh", b"layer")
        .file("a/.wh..wh..opq", b"")
        .finish();
    apply(dest.path(), &tar);
    assert_eq!(names(&dest.path().join("a")), ["new", "sub"]);
    assert_eq!(names(&dest.path().join("a/sub")), ["fresh"], "lower a/sub/deep is hidden too");
}

#[test]
fn opaque_keeps_implicit_parents_of_new_files() {
    let dest = lower();
    let tar = RawTar::new().file("a/sub/fresh", b"layer").file("a/.wh..wh..opq", b"").finish();
    apply(dest.path(), &tar);
    assert_eq!(names(&dest.path().join("a")), ["sub"]);
    assert_eq!(names(&dest.path().join("a/sub")), ["fresh"]);
}

#[test]
fn opaque_on_a_missing_directory_creates_it_empty() {
    let dest = lower();
    apply(dest.path(), &RawTar::new().file("fresh/.wh..wh..opq", b"").finish());
    assert!(names(&dest.path().join("fresh")).is_empty());
}

#[test]
fn opaque_removes_lower_symlinks_without_following_them() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("sentinel"), "keep").unwrap();
    let dest = lower();
    symlink(outside.path(), dest.path().join("a/out")).unwrap();
    apply(dest.path(), &RawTar::new().file("a/.wh..wh..opq", b"").finish());
    assert!(names(&dest.path().join("a")).is_empty());
    assert_eq!(fs::read(outside.path().join("sentinel")).unwrap(), b"keep");
}

#[test]
fn whiteouts_written_by_layer_writer_apply_on_extract() {
    let mut tar = Vec::new();
    let mut layer = LayerWriter::new(&mut tar, Compression::Gzip).unwrap();
    layer.append(&Entry::new("a", EntryKind::Dir), std::io::empty()).unwrap();
    layer.append(&Entry::new("a", EntryKind::OpaqueWhiteout), std::io::empty()).unwrap();
    layer.append(&Entry::new("a/new", EntryKind::File { size: 1 }), &b"n"[..]).unwrap();
    layer.append(&Entry::new("b", EntryKind::Whiteout), std::io::empty()).unwrap();
    layer.finish().unwrap();
    let dest = lower();
    apply(dest.path(), &tar);
    assert_eq!(names(dest.path()), ["a", "c"]);
    assert_eq!(names(&dest.path().join("a")), ["new"]);
}

#[test]
fn a_file_replaces_a_lower_directory() {
    let dest = lower();
    apply(dest.path(), &RawTar::new().file("c", b"now a file").finish());
    assert_eq!(fs::read(dest.path().join("c")).unwrap(), b"now a file");
}

#[test]
fn a_directory_replaces_a_lower_file() {
    let dest = lower();
    apply(dest.path(), &RawTar::new().dir("b/").file("b/inside", b"x").finish());
    assert_eq!(names(&dest.path().join("b")), ["inside"]);
}

#[test]
fn a_directory_merges_with_a_lower_directory() {
    let dest = lower();
    apply(dest.path(), &RawTar::new().dir("c/").file("c/added", b"x").finish());
    assert_eq!(names(&dest.path().join("c")), ["added", "child"]);
}

#[test]
fn a_file_replaces_a_lower_file_without_touching_its_other_names() {
    let dest = lower();
    fs::hard_link(dest.path().join("b"), dest.path().join("b2")).unwrap();
    apply(dest.path(), &RawTar::new().file("b", b"new").finish());
    assert_eq!(fs::read(dest.path().join("b")).unwrap(), b"new");
    assert_eq!(fs::read(dest.path().join("b2")).unwrap(), b"lower");
}

#[test]
fn a_symlink_replaces_a_lower_directory() {
    let dest = lower();
    apply(dest.path(), &RawTar::new().symlink("c", "a").finish());
    assert_eq!(fs::read_link(dest.path().join("c")).unwrap(), Path::new("a"));
}

#[test]
fn a_root_directory_entry_is_ignored() {
    let dest = lower();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dest.path(), fs::Permissions::from_mode(0o711)).unwrap();
    apply(dest.path(), &RawTar::new().dir("./").dir("/").file("./x", b"x").finish());
    let mode = fs::metadata(dest.path()).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o711);
    assert!(dest.path().join("x").exists());
}
