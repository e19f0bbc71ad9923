mod common;

use hoist::sandbox::{ResolvedUser, SandboxError, resolve_user};

#[test]
fn resolve_user_by_name_reads_the_images_files() {
    let root = common::sandbox::rootfs();
    let u = resolve_user(root.path(), "app").unwrap();
    assert_eq!(
        u,
        ResolvedUser {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![1000, 1001],
            home: "/home/app".into(),
            name: Some("app".into())
        }
    );
}

#[test]
fn resolve_user_numeric_without_passwd_file() {
    let root = tempfile::tempdir().unwrap();
    let u = resolve_user(root.path(), "12:34").unwrap();
    assert_eq!((u.uid, u.gid, u.additional_gids, u.home), (12, 34, vec![34], "/".to_string()));
}

#[test]
fn resolve_user_unknown_group_is_an_error() {
    let root = common::sandbox::rootfs();
    assert!(
        matches!(resolve_user(root.path(), "app:nope"), Err(SandboxError::UnknownGroup(g)) if g == "nope")
    );
}

#[test]
fn resolve_user_follows_symlinks_inside_the_root_only() {
    let root = common::sandbox::rootfs();
    let etc = root.path().join("etc");
    std::fs::create_dir(root.path().join("alt")).unwrap();
    std::fs::rename(etc.join("passwd"), root.path().join("alt/passwd")).unwrap();
    // An absolute link resolves against the image root, not the host's /.
    std::os::unix::fs::symlink("/alt/passwd", etc.join("passwd")).unwrap();
    assert_eq!(resolve_user(root.path(), "app").unwrap().uid, 1000);
    std::fs::remove_file(etc.join("passwd")).unwrap();
    // `..` stops at the image root, as it would inside the sandbox.
    std::os::unix::fs::symlink("../../../../../../../alt/passwd", etc.join("passwd")).unwrap();
    assert_eq!(resolve_user(root.path(), "app").unwrap().uid, 1000);
}
