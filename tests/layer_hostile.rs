//! Layers built to escape or to lie. Each must fail with an error naming
//! the offending entry, and nothing outside the destination may change.

mod raw_tar;
mod tree_listing;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};

use hoist::layer::{ExtractOptions, LayerError, extract};
use raw_tar::RawTar;

/// A temporary root holding `dest/` (where layers go) and `outside/` with a
/// sentinel file that no layer may reach.
struct Scene {
    root: tempfile::TempDir,
    before: BTreeMap<PathBuf, tree_listing::Node>,
}

impl Scene {
    fn new() -> Scene {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("dest")).unwrap();
        fs::create_dir_all(root.path().join("outside/dir")).unwrap();
        fs::write(root.path().join("outside/sentinel"), "original").unwrap();
        let before = outside_dest(root.path());
        Scene { root, before }
    }

    fn dest(&self) -> PathBuf {
        self.root.path().join("dest")
    }

    fn outside(&self) -> PathBuf {
        self.root.path().join("outside")
    }

    fn extract(&self, tar: &[u8]) -> Result<hoist::layer::ExtractStats, LayerError> {
        extract(tar, &self.dest(), &ExtractOptions::default())
    }

    /// Extracts `tar`, expects an error mentioning `entry`, and checks that
    /// everything outside `dest/` is as it was.
    fn refuse(&self, tar: &[u8], entry: &str) -> LayerError {
        let err = self.extract(tar).expect_err("a hostile layer was accepted");
        assert!(err.to_string().contains(entry), "error does not name {entry:?}: {err}");
        self.assert_outside_untouched();
        err
    }

    fn assert_outside_untouched(&self) {
        assert_eq!(outside_dest(self.root.path()), self.before);
        assert_eq!(fs::read(self.outside().join("sentinel")).unwrap(), b"original");
        assert_eq!(fs::metadata(self.outside().join("sentinel")).unwrap().nlink(), 1);
    }
}

fn outside_dest(root: &Path) -> BTreeMap<PathBuf, tree_listing::Node> {
    tree_listing::listing(root).into_iter().filter(|(path, _)| !path.starts_with("dest")).collect()
}

#[test]
fn dot_dot_that_escapes_is_refused() {
    let scene = Scene::new();
    let err =
        scene.refuse(&RawTar::new().file("../outside/sentinel", b"evil").finish(), "../outside/sentinel");
    assert!(matches!(err, LayerError::PathEscapes { .. }), "{err}");
}

#[test]
fn dot_dot_hidden_behind_a_directory_is_refused() {
    let scene = Scene::new();
    let err =
        scene.refuse(&RawTar::new().file("a/../../outside/evil", b"evil").finish(), "a/../../outside/evil");
    assert!(matches!(err, LayerError::PathEscapes { .. }), "{err}");
}

#[test]
fn dot_dot_in_a_pax_path_is_refused() {
    let scene = Scene::new();
    let tar = RawTar::new().pax(&[("path", b"../../outside/evil")]).file("innocent", b"evil").finish();
    let err = scene.refuse(&tar, "../../outside/evil");
    assert!(matches!(err, LayerError::PathEscapes { .. }), "{err}");
}

#[test]
fn dot_dot_directory_is_refused() {
    let scene = Scene::new();
    let err = scene.refuse(&RawTar::new().dir("../outside/newdir/").finish(), "../outside/newdir/");
    assert!(matches!(err, LayerError::PathEscapes { .. }), "{err}");
}

#[test]
fn dot_dot_that_stays_inside_is_resolved() {
    let scene = Scene::new();
    scene.extract(&RawTar::new().file("a/../b", b"x").finish()).unwrap();
    assert_eq!(fs::read(scene.dest().join("b")).unwrap(), b"x");
    assert!(!scene.dest().join("a").exists());
}

#[test]
fn absolute_paths_land_inside_the_destination() {
    let scene = Scene::new();
    let top = format!("hoist-absolute-test-{}", std::process::id());
    scene.extract(&RawTar::new().file(&format!("/{top}/f"), b"x").finish()).unwrap();
    assert_eq!(fs::read(scene.dest().join(&top).join("f")).unwrap(), b"x");
    assert!(!Path::new("/").join(&top).exists());
    scene.assert_outside_untouched();
}

#[test]
fn writing_through_a_symlink_out_is_refused() {
    let scene = Scene::new();
    let tar = RawTar::new().symlink("link", "../outside").file("link/sentinel", b"evil").finish();
    let err = scene.refuse(&tar, "link/sentinel");
    assert!(
        matches!(&err, LayerError::ThroughSymlink { symlink, .. } if symlink == Path::new("link")),
        "{err}"
    );
}

#[test]
fn writing_through_an_absolute_symlink_is_refused() {
    let scene = Scene::new();
    let target = scene.outside().display().to_string();
    let tar = RawTar::new().symlink("link", &target).file("link/evil", b"evil").finish();
    let err = scene.refuse(&tar, "link/evil");
    assert!(matches!(err, LayerError::ThroughSymlink { .. }), "{err}");
}

#[test]
fn writing_through_a_chain_of_symlinks_is_refused() {
    let scene = Scene::new();
    let tar = RawTar::new().symlink("a", "b").symlink("b", "../outside").file("a/evil", b"evil").finish();
    let err = scene.refuse(&tar, "a/evil");
    assert!(matches!(err, LayerError::ThroughSymlink { .. }), "{err}");
}

#[test]
fn writing_through_a_symlink_that_points_inside_is_refused_too() {
    let scene = Scene::new();
    let tar = RawTar::new().symlink("link", ".").file("link/x", b"x").finish();
    let err = scene.refuse(&tar, "link/x");
    assert!(matches!(err, LayerError::ThroughSymlink { .. }), "{err}");
}

#[test]
fn writing_through_a_lower_layer_symlink_is_refused() {
    let scene = Scene::new();
    symlink(scene.outside(), scene.dest().join("etc")).unwrap();
    let err = scene.refuse(&RawTar::new().file("etc/sentinel", b"evil").finish(), "etc/sentinel");
    assert!(matches!(err, LayerError::ThroughSymlink { .. }), "{err}");
}

#[test]
fn a_symlink_replacing_a_directory_mid_layer_is_not_written_through() {
    let scene = Scene::new();
    let tar = RawTar::new().dir("d/").symlink("d", "../outside").file("d/sentinel", b"evil").finish();
    let err = scene.refuse(&tar, "d/sentinel");
    assert!(matches!(err, LayerError::ThroughSymlink { .. }), "{err}");
}

#[test]
fn a_file_replaces_a_symlink_instead_of_writing_through_it() {
    let scene = Scene::new();
    let tar = RawTar::new().symlink("s", "../outside/sentinel").file("s", b"new").finish();
    scene.extract(&tar).unwrap();
    assert_eq!(fs::read(scene.dest().join("s")).unwrap(), b"new");
    assert!(fs::symlink_metadata(scene.dest().join("s")).unwrap().is_file());
    scene.assert_outside_untouched();
}

#[test]
fn a_directory_replaces_a_symlink_instead_of_merging_through_it() {
    let scene = Scene::new();
    let tar = RawTar::new().symlink("s", "../outside").dir("s/").file("s/x", b"x").finish();
    scene.extract(&tar).unwrap();
    assert!(fs::symlink_metadata(scene.dest().join("s")).unwrap().is_dir());
    assert_eq!(fs::read(scene.dest().join("s/x")).unwrap(), b"x");
    scene.assert_outside_untouched();
}

#[test]
fn a_hardlink_out_of_the_destination_is_refused() {
    let scene = Scene::new();
    let err = scene.refuse(&RawTar::new().hardlink("h", "../outside/sentinel").finish(), "h");
    assert!(matches!(err, LayerError::LinkEscapes { .. }), "{err}");
    assert!(err.to_string().contains("../outside/sentinel"));
}

#[test]
fn an_absolute_hardlink_target_is_taken_inside_the_destination() {
    let scene = Scene::new();
    let sentinel = scene.outside().join("sentinel").display().to_string();
    let err = scene.refuse(&RawTar::new().hardlink("h", &sentinel).finish(), "h");
    assert!(matches!(err, LayerError::LinkTargetMissing { .. }), "{err}");
}

#[test]
fn a_hardlink_through_a_symlink_is_refused() {
    let scene = Scene::new();
    let tar = RawTar::new().symlink("link", "../outside").hardlink("h", "link/sentinel").finish();
    let err = scene.refuse(&tar, "h");
    assert!(matches!(err, LayerError::ThroughSymlink { .. }), "{err}");
}

#[test]
fn a_hardlink_to_a_missing_target_is_refused() {
    let scene = Scene::new();
    let err = scene.refuse(&RawTar::new().hardlink("h", "nothere").finish(), "h");
    assert!(matches!(err, LayerError::LinkTargetMissing { .. }), "{err}");
}

#[test]
fn a_hardlink_to_a_directory_is_refused() {
    let scene = Scene::new();
    let err = scene.refuse(&RawTar::new().dir("d/").hardlink("h", "d").finish(), "h");
    assert!(matches!(err, LayerError::InvalidEntry { .. }), "{err}");
}

#[test]
fn a_hardlink_to_a_symlink_links_the_symlink_itself() {
    let scene = Scene::new();
    let tar = RawTar::new().symlink("s", "../outside/sentinel").hardlink("h", "s").finish();
    scene.extract(&tar).unwrap();
    assert!(fs::symlink_metadata(scene.dest().join("h")).unwrap().file_type().is_symlink());
    scene.assert_outside_untouched();
}

#[test]
fn a_whiteout_through_a_symlink_is_refused() {
    let scene = Scene::new();
    let tar = RawTar::new().symlink("link", "../outside").file("link/.wh.sentinel", b"").finish();
    let err = scene.refuse(&tar, "link/.wh.sentinel");
    assert!(matches!(err, LayerError::ThroughSymlink { .. }), "{err}");
}

#[test]
fn an_opaque_whiteout_through_a_symlink_is_refused() {
    let scene = Scene::new();
    let tar = RawTar::new().symlink("link", "../outside").file("link/.wh..wh..opq", b"").finish();
    let err = scene.refuse(&tar, "link/.wh..wh..opq");
    assert!(matches!(err, LayerError::ThroughSymlink { .. }), "{err}");
}

#[test]
fn a_whiteout_of_dot_is_refused() {
    let scene = Scene::new();
    let err = scene.refuse(&RawTar::new().file("a/.wh..", b"").finish(), "a/.wh..");
    assert!(matches!(err, LayerError::InvalidEntry { .. }), "{err}");
}

#[test]
fn a_file_named_like_the_root_is_refused() {
    let scene = Scene::new();
    let err = scene.refuse(&RawTar::new().file(".", b"x").finish(), "\".\"");
    assert!(matches!(err, LayerError::InvalidEntry { .. }), "{err}");
    assert!(scene.dest().is_dir());
}

#[test]
fn a_nul_byte_in_a_pax_path_is_refused() {
    let scene = Scene::new();
    let tar = RawTar::new().pax(&[("path", b"ok\0/../../evil")]).file("x", b"").finish();
    let err = scene.refuse(&tar, "ok");
    assert!(matches!(err, LayerError::InvalidEntry { .. }), "{err}");
}

#[test]
fn an_unknown_entry_type_is_refused() {
    let scene = Scene::new();
    let err = scene.refuse(&RawTar::new().entry(b'V', b"volume", b"", b"").finish(), "volume");
    assert!(matches!(err, LayerError::UnsupportedEntryType { type_flag: 'V', .. }), "{err}");
}

#[test]
fn a_symlink_may_point_anywhere_because_it_is_never_followed() {
    let scene = Scene::new();
    scene.extract(&RawTar::new().symlink("s", "../../../../etc/shadow").finish()).unwrap();
    assert_eq!(fs::read_link(scene.dest().join("s")).unwrap(), Path::new("../../../../etc/shadow"));
    scene.assert_outside_untouched();
}

#[test]
fn dot_dot_in_a_gnu_long_name_is_refused() {
    let scene = Scene::new();
    let tar = RawTar::new()
        .entry(b'L', b"././@LongLink", b"", b"../../outside/evil\0")
        .file("short", b"evil")
        .finish();
    let err = scene.refuse(&tar, "../../outside/evil");
    assert!(matches!(err, LayerError::PathEscapes { .. }), "{err}");
}

#[test]
fn dot_dot_in_a_gnu_long_link_target_is_refused() {
    let scene = Scene::new();
    let tar = RawTar::new()
        .entry(b'K', b"././@LongLink", b"", b"../outside/sentinel\0")
        .hardlink("h", "innocent")
        .finish();
    let err = scene.refuse(&tar, "../outside/sentinel");
    assert!(matches!(err, LayerError::LinkEscapes { .. }), "{err}");
}
