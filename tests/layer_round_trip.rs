mod tree_listing;

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use hoist::layer::{Compression, Entry, EntryKind, ExtractOptions, LayerWriter, extract, write_dir};
use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn set_mtime(path: &Path, seconds: i64) {
    let t = Timespec { tv_sec: seconds, tv_nsec: 0 };
    let times = Timestamps { last_access: t, last_modification: t };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty()).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A file capability granting CAP_NET_BIND_SERVICE (VFS_CAP_REVISION_2, effective).
const NET_BIND_CAPABILITY: [u8; 20] =
    [0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// A tree with every kind of file a layer holds and the metadata that must
/// survive; owners, devices and privileged xattrs only when running as root.
fn build_tree(root: &Path, with_non_utf8_name: bool) {
    fs::create_dir_all(root.join("dir/private")).unwrap();
    fs::create_dir(root.join("tmp")).unwrap();
    fs::create_dir(root.join("setgid")).unwrap();
    fs::create_dir(root.join("z")).unwrap();
    fs::write(root.join("empty"), "").unwrap();
    fs::write(root.join("dir/small"), "hello").unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(root.join("dir/big"), big).unwrap();
    fs::write(root.join("suid"), "#!/bin/sh\n").unwrap();
    fs::write(root.join("a-b"), "sorts before a/").unwrap();
    fs::write(root.join("a0"), "sorts after a/").unwrap();
    fs::create_dir(root.join("a")).unwrap();
    fs::write(root.join("a/x"), "x").unwrap();
    let long_dir = root.join("d".repeat(60));
    fs::create_dir(&long_dir).unwrap();
    fs::write(long_dir.join("f".repeat(80)), "long name").unwrap();
    if with_non_utf8_name {
        fs::write(root.join(OsStr::from_bytes(b"caf\xe9")), "latin-1").unwrap();
    }
    symlink("dir/small", root.join("rel")).unwrap();
    symlink("/etc/passwd", root.join("abs")).unwrap();
    symlink("dir", root.join("dirlink")).unwrap();
    symlink("t".repeat(150), root.join("longlink")).unwrap();
    fs::hard_link(root.join("dir/small"), root.join("link1")).unwrap();
    fs::hard_link(root.join("dir/small"), root.join("z/link2")).unwrap();
    rustix::fs::mknodat(CWD, root.join("fifo"), FileType::Fifo, Mode::from_raw_mode(0o640), 0).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();

    chmod(&root.join("dir/private"), 0o700);
    chmod(&root.join("tmp"), 0o1777);
    chmod(&root.join("setgid"), 0o2755);
    chmod(&root.join("suid"), 0o4755);
    chmod(&root.join("empty"), 0o600);
    set_xattr(&root.join("dir/small"), "user.comment", b"kept");
    set_xattr(&root.join("dir"), "user.dir", b"also kept");

    if is_root() {
        fs::create_dir(root.join("dev")).unwrap();
        let node = |name: &str, file_type, major, minor| {
            rustix::fs::mknodat(
                CWD,
                root.join(name),
                file_type,
                Mode::from_raw_mode(0o666),
                rustix::fs::makedev(major, minor),
            )
            .unwrap();
        };
        node("dev/null", FileType::CharacterDevice, 1, 3);
        node("dev/loop0", FileType::BlockDevice, 7, 0);
        std::os::unix::fs::lchown(root.join("dir/private"), Some(1000), Some(1000)).unwrap();
        // Too large for the ustar uid field: needs a PAX record.
        std::os::unix::fs::lchown(root.join("dir/big"), Some(3_000_000), Some(3_000_001)).unwrap();
        std::os::unix::fs::lchown(root.join("rel"), Some(7), Some(8)).unwrap();
        chmod(&root.join("suid"), 0o4755);
        set_xattr(&root.join("suid"), "security.capability", &NET_BIND_CAPABILITY);
        set_xattr(&root.join("abs"), "trusted.on_symlink", b"yes");
    }

    // Mtimes last, deepest first, so creating children does not change them.
    let mut paths = Vec::new();
    collect_paths(root, &mut paths);
    paths.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, path) in paths.iter().enumerate() {
        set_mtime(path, 1_600_000_000 + i as i64 * 1000);
    }
    // Outside the ustar mtime field in both directions.
    set_mtime(&root.join("a0"), 16_725_225_600);
    set_mtime(&root.join("a-b"), -100);
}

fn collect_paths(dir: &Path, out: &mut Vec<PathBuf>) {
    for child in fs::read_dir(dir).unwrap() {
        let child = child.unwrap();
        if child.file_type().unwrap().is_dir() {
            collect_paths(&child.path(), out);
        }
        out.push(child.path());
    }
}

fn layer_of(root: &Path, compression: Compression) -> Vec<u8> {
    let mut bytes = Vec::new();
    write_dir(root, &mut bytes, compression).unwrap();
    bytes
}

fn tar_names(tar: &[u8]) -> Vec<Vec<u8>> {
    let mut archive = tar::Archive::new(tar);
    archive.entries().unwrap().map(|e| e.unwrap().path_bytes().into_owned()).collect()
}

#[test]
fn write_dir_then_extract_reproduces_the_tree() {
    let src = tempfile::tempdir().unwrap();
    build_tree(src.path(), true);
    let dest = tempfile::tempdir().unwrap();
    let layer = layer_of(src.path(), Compression::Gzip);
    let stats = extract(&layer[..], dest.path(), &ExtractOptions::default()).unwrap();
    assert!(stats.warnings.is_empty(), "{:?}", stats.warnings);
    let expected = tree_listing::listing(src.path());
    let actual = tree_listing::listing(dest.path());
    for (path, node) in &expected {
        assert_eq!(actual.get(path), Some(node), "{path:?}");
    }
    assert_eq!(actual.len(), expected.len());
}

#[test]
fn extracted_hardlinks_share_one_inode() {
    let src = tempfile::tempdir().unwrap();
    build_tree(src.path(), false);
    let dest = tempfile::tempdir().unwrap();
    extract(&layer_of(src.path(), Compression::None)[..], dest.path(), &ExtractOptions::default()).unwrap();
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &str| fs::metadata(dest.path().join(p)).unwrap().ino();
    assert_eq!(ino("dir/small"), ino("link1"));
    assert_eq!(ino("dir/small"), ino("z/link2"));
    assert_eq!(fs::metadata(dest.path().join("link1")).unwrap().nlink(), 3);
}

#[test]
fn hardlinks_point_to_the_first_name_in_sorted_order() {
    let src = tempfile::tempdir().unwrap();
    build_tree(src.path(), false);
    let tar = layer_of(src.path(), Compression::None);
    let mut archive = tar::Archive::new(&tar[..]);
    let links: Vec<(Vec<u8>, Vec<u8>)> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.header().entry_type() == tar::EntryType::Link)
        .map(|e| (e.path_bytes().into_owned(), e.link_name_bytes().unwrap().into_owned()))
        .collect();
    assert_eq!(
        links,
        vec![(b"link1".to_vec(), b"dir/small".to_vec()), (b"z/link2".to_vec(), b"dir/small".to_vec()),]
    );
}

#[test]
fn writing_the_same_tree_twice_gives_identical_bytes() {
    let src = tempfile::tempdir().unwrap();
    build_tree(src.path(), true);
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        assert_eq!(layer_of(src.path(), compression), layer_of(src.path(), compression));
    }
}

#[test]
fn layer_bytes_do_not_depend_on_creation_or_readdir_order() {
    let make = |order: &mut dyn Iterator<Item = u32>| {
        let root = tempfile::tempdir().unwrap();
        for i in order {
            let dir = root.path().join(format!("d{}", i % 7));
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(format!("f{i:03}")), i.to_string()).unwrap();
        }
        let mut paths = Vec::new();
        collect_paths(root.path(), &mut paths);
        for path in paths {
            set_mtime(&path, 1_234_567_890);
        }
        root
    };
    let forward = make(&mut (0..200));
    let backward = make(&mut (0..200).rev());
    assert_eq!(layer_of(forward.path(), Compression::None), layer_of(backward.path(), Compression::None));
}

#[test]
fn tar_names_are_sorted_relative_and_directories_end_with_a_slash() {
    let src = tempfile::tempdir().unwrap();
    build_tree(src.path(), false);
    let names = tar_names(&layer_of(src.path(), Compression::None));
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(names.iter().all(|n| !n.starts_with(b"/") && !n.starts_with(b"./")));
    assert!(names.contains(&b"dir/".to_vec()));
    assert!(names.contains(&b"dir/private/".to_vec()));
    assert!(names.contains(&b"dirlink".to_vec()), "a symlink to a directory is not a directory");
    let position = |n: &[u8]| names.iter().position(|x| x == n).unwrap();
    assert!(position(b"a-b") < position(b"a/") && position(b"a/") < position(b"a/x"));
    assert!(position(b"a/x") < position(b"a0"));
}

#[test]
fn sockets_are_left_out() {
    let src = tempfile::tempdir().unwrap();
    build_tree(src.path(), false);
    let names = tar_names(&layer_of(src.path(), Compression::None));
    assert!(!names.contains(&b"sock".to_vec()));
}

#[test]
fn symlinks_are_stored_never_followed() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), "not for the layer").unwrap();
    let src = tempfile::tempdir().unwrap();
    symlink(outside.path(), src.path().join("out")).unwrap();
    let names = tar_names(&layer_of(src.path(), Compression::None));
    assert_eq!(names, vec![b"out".to_vec()]);
}

#[test]
fn headers_carry_no_user_names_atime_or_ctime() {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("f"), "x").unwrap();
    let tar = layer_of(src.path(), Compression::None);
    let mut archive = tar::Archive::new(&tar[..]);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().as_ustar().unwrap();
        assert_eq!(header.uname, [0; 32]);
        assert_eq!(header.gname, [0; 32]);
        assert!(entry.pax_extensions().unwrap().is_none());
    }
}

#[test]
fn long_names_and_large_values_go_into_pax_records() {
    let name = format!("{}/{}", "d".repeat(70), "f".repeat(70));
    let mut entry = Entry::new(&name, EntryKind::File { size: 3 });
    entry.uid = 3_000_000;
    entry.mtime = -5;
    entry.uname = Some("u".repeat(40));
    entry.xattrs.insert("user.k".into(), b"v\0binary".to_vec());
    let mut tar = Vec::new();
    let mut layer = LayerWriter::new(&mut tar, Compression::None).unwrap();
    layer.append(&entry, &b"abc"[..]).unwrap();
    layer.finish().unwrap();

    let mut archive = tar::Archive::new(&tar[..]);
    let mut read = archive.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(read.path_bytes().as_ref(), name.as_bytes());
    assert_eq!(read.header().uid().unwrap(), 3_000_000);
    let records: Vec<(String, Vec<u8>)> = read
        .pax_extensions()
        .unwrap()
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (r.key().unwrap().to_owned(), r.value_bytes().to_vec())
        })
        .collect();
    let keys: Vec<&str> = records.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["SCHILY.xattr.user.k", "mtime", "path", "uid", "uname"]);
    assert_eq!(records[0].1, b"v\0binary");
    assert_eq!(records[1].1, b"-5");
    let mut contents = String::new();
    read.read_to_string(&mut contents).unwrap();
    assert_eq!(contents, "abc");
}

#[test]
fn gnu_tar_extracts_what_we_write_to_the_same_tree() {
    let src = tempfile::tempdir().unwrap();
    build_tree(src.path(), true);
    let work = tempfile::tempdir().unwrap();
    let layer = work.path().join("layer.tar");
    fs::write(&layer, layer_of(src.path(), Compression::None)).unwrap();
    let dest = work.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let status = Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "-xpf"])
        .arg(&layer)
        .arg("-C")
        .arg(&dest)
        .status()
        .unwrap();
    assert!(status.success());
    let expected = tree_listing::listing(src.path());
    let actual = tree_listing::listing(&dest);
    for (path, node) in &expected {
        assert_eq!(actual.get(path), Some(node), "{path:?}");
    }
}

#[test]
fn append_rejects_a_path_with_dot_dot() {
    let mut layer = LayerWriter::new(Vec::new(), Compression::None).unwrap();
    let err =
        layer.append(&Entry::new("a/../../etc/passwd", EntryKind::File { size: 0 }), &b""[..]).unwrap_err();
    assert!(err.to_string().contains("a/../../etc/passwd"), "{err}");
}

#[test]
fn append_rejects_contents_shorter_than_the_size() {
    let mut layer = LayerWriter::new(Vec::new(), Compression::None).unwrap();
    let err = layer.append(&Entry::new("f", EntryKind::File { size: 10 }), &b"short"[..]).unwrap_err();
    assert!(err.to_string().contains("5 of 10"), "{err}");
}
