//! What extraction does with owners, devices and xattrs, as root and not.

mod raw_tar;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use hoist::idmap::{IdMap, IdRange};
use hoist::layer::{ExtractOptions, ExtractWarning, LayerError, Ownership, XattrPolicy, extract};
use raw_tar::RawTar;

const DEST_VAR: &str = "HOIST_TEST_UNPRIVILEGED_DEST";
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs `body` without privileges: as root, by running this same test again
/// in a child process as `nobody`; otherwise directly. Returns the
/// destination the body extracted into.
fn unprivileged(test: &str, body: fn(&Path)) -> Option<tempfile::TempDir> {
    if let Some(dest) = std::env::var_os(DEST_VAR) {
        body(Path::new(&dest));
        return None;
    }
    let dest = tempfile::tempdir().unwrap();
    if !is_root() {
        body(dest.path());
        return Some(dest);
    }
    fs::set_permissions(dest.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(DEST_VAR, dest.path())
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "unprivileged run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dest)
}

fn device_layer() -> Vec<u8> {
    let mut tar = RawTar::new().file("before", b"x");
    for (flag, name, major, minor) in [(raw_tar::CHAR, "dev-null", 1, 3), (raw_tar::BLOCK, "dev-loop", 7, 0)]
    {
        let mut header = tar::Header::new_ustar();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.as_old_mut().linkflag[0] = flag;
        header.set_mode(0o666);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(0);
        header.set_device_major(major).unwrap();
        header.set_device_minor(minor).unwrap();
        header.set_cksum();
        tar = tar.raw(header.as_bytes());
    }
    tar.entry(raw_tar::FIFO, b"fifo", b"", b"").file("after", b"y").finish()
}

#[test]
fn devices_are_skipped_with_a_warning_without_privileges() {
    unprivileged("devices_are_skipped_with_a_warning_without_privileges", |dest| {
        let stats = extract(&device_layer()[..], dest, &ExtractOptions::default()).unwrap();
        let skipped: Vec<PathBuf> = stats
            .warnings
            .iter()
            .filter_map(|w| match w {
                ExtractWarning::DeviceSkipped { entry } => Some(entry.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(skipped, [PathBuf::from("dev-null"), PathBuf::from("dev-loop")]);
        assert!(!dest.join("dev-null").exists());
        assert!(fs::symlink_metadata(dest.join("fifo")).unwrap().file_type().is_fifo());
        assert!(dest.join("after").exists());
    });
}

#[test]
fn devices_are_created_as_root() {
    assert!(
        is_root(),
        "this test needs root (device nodes, chown to other ids): run the suite as root, as .ci/run does"
    );
    let dest = tempfile::tempdir().unwrap();
    let stats = extract(&device_layer()[..], dest.path(), &ExtractOptions::default()).unwrap();
    assert!(stats.warnings.is_empty());
    let md = fs::symlink_metadata(dest.path().join("dev-null")).unwrap();
    assert!(md.file_type().is_char_device());
    assert_eq!(md.rdev(), rustix::fs::makedev(1, 3));
}

#[test]
fn ownership_is_left_to_the_extracting_user_without_privileges() {
    let dest = unprivileged("ownership_is_left_to_the_extracting_user_without_privileges", |dest| {
        let mut tar = RawTar::new();
        tar = tar.owned_file("owned", 1234, 5678);
        extract(&tar.finish()[..], dest, &ExtractOptions::default()).unwrap();
        let md = fs::metadata(dest.join("owned")).unwrap();
        assert_eq!(md.uid(), rustix::process::geteuid().as_raw());
    });
    if let Some(dest) = dest
        && is_root()
    {
        assert_eq!(fs::metadata(dest.path().join("owned")).unwrap().uid(), NOBODY);
    }
}

#[test]
fn modes_and_read_only_directories_are_restored_without_privileges() {
    unprivileged("modes_and_read_only_directories_are_restored_without_privileges", |dest| {
        let tar = RawTar::new()
            .entry_with_mode(raw_tar::DIR, "ro/", 0o555, b"")
            .entry_with_mode(raw_tar::FILE, "ro/setuid", 0o4755, b"#!")
            .entry_with_mode(raw_tar::FILE, "ro/private", 0o600, b"p")
            .finish();
        extract(&tar[..], dest, &ExtractOptions::default()).unwrap();
        let mode = |p: &str| fs::symlink_metadata(dest.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode("ro"), 0o555);
        assert_eq!(mode("ro/setuid"), 0o4755);
        assert_eq!(mode("ro/private"), 0o600);
    });
}

#[test]
fn privileged_xattrs_are_skipped_with_a_warning_without_privileges() {
    unprivileged("privileged_xattrs_are_skipped_with_a_warning_without_privileges", |dest| {
        let tar = RawTar::new()
            .pax(&[("SCHILY.xattr.trusted.k", b"v"), ("SCHILY.xattr.user.k", b"v")])
            .file("f", b"x")
            .finish();
        let stats = extract(&tar[..], dest, &ExtractOptions::default()).unwrap();
        assert!(matches!(
            &stats.warnings[..],
            [ExtractWarning::XattrSkipped { name, .. }] if name == "trusted.k"
        ));
        assert_eq!(rustix::fs::lgetxattr(dest.join("f"), "user.k", &mut [0u8; 8][..]).unwrap(), 1);
    });
}

fn unsupported_xattr_layer() -> Vec<u8> {
    // No filesystem accepts a namespace it does not know.
    RawTar::new().pax(&[("SCHILY.xattr.bogus.k", b"v")]).file("f", b"x").finish()
}

#[test]
fn required_xattrs_that_cannot_be_set_fail_naming_entry_and_attribute() {
    let options = ExtractOptions { xattrs: XattrPolicy::Require, ..ExtractOptions::default() };
    let dest = tempfile::tempdir().unwrap();
    let err = extract(&unsupported_xattr_layer()[..], dest.path(), &options).unwrap_err();
    assert!(matches!(err, LayerError::Xattr { .. }), "{err}");
    assert!(err.to_string().contains("bogus.k") && err.to_string().contains("\"f\""), "{err}");
}

#[test]
fn best_effort_xattrs_that_cannot_be_set_become_warnings() {
    let dest = tempfile::tempdir().unwrap();
    let stats = extract(&unsupported_xattr_layer()[..], dest.path(), &ExtractOptions::default()).unwrap();
    assert!(matches!(&stats.warnings[..], [ExtractWarning::XattrSkipped { .. }]));
    assert!(dest.path().join("f").exists());
}

#[test]
fn ignored_xattrs_are_not_even_tried() {
    let options = ExtractOptions { xattrs: XattrPolicy::Ignore, ..ExtractOptions::default() };
    let dest = tempfile::tempdir().unwrap();
    let stats = extract(&unsupported_xattr_layer()[..], dest.path(), &options).unwrap();
    assert!(stats.warnings.is_empty());
}

#[test]
fn remapped_ownership_shifts_ids_into_the_host_range() {
    assert!(
        is_root(),
        "this test needs root (device nodes, chown to other ids): run the suite as root, as .ci/run does"
    );
    let range = |host_id| IdRange { container_id: 0, host_id, size: 65536 };
    let options = ExtractOptions {
        ownership: Ownership::Remap(IdMap { uids: vec![range(100_000)], gids: vec![range(200_000)] }),
        ..ExtractOptions::default()
    };
    let dest = tempfile::tempdir().unwrap();
    let tar = RawTar::new().owned_file("f", 33, 44).finish();
    extract(&tar[..], dest.path(), &options).unwrap();
    let md = fs::metadata(dest.path().join("f")).unwrap();
    assert_eq!((md.uid(), md.gid()), (100_033, 200_044));
}

#[test]
fn ignored_ownership_leaves_files_to_root_even_as_root() {
    let options = ExtractOptions { ownership: Ownership::Ignore, ..ExtractOptions::default() };
    let dest = tempfile::tempdir().unwrap();
    extract(&RawTar::new().owned_file("f", 33, 44).finish()[..], dest.path(), &options).unwrap();
    let md = fs::metadata(dest.path().join("f")).unwrap();
    assert_eq!(md.uid(), rustix::process::geteuid().as_raw());
}
