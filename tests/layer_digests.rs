mod raw_tar;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use hoist::layer::{Compression, Digest, ExtractOptions, LayerError, extract, write_dir};

/// `sha256:` + what the system's sha256sum says about `bytes`, optionally
/// after piping them through `decompress` (the system gzip or zstd).
fn system_sha256(bytes: &[u8], decompress: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob");
    fs::write(&file, bytes).unwrap();
    let script = match decompress {
        Some(tool) => format!("{tool} -dc < \"$1\" | sha256sum"),
        None => "sha256sum < \"$1\"".to_string(),
    };
    let out = Command::new("sh").args(["-c", &script, "sh"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    format!("sha256:{}", String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap())
}

fn sample_tree() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir(root.path().join("etc")).unwrap();
    fs::write(root.path().join("etc/hostname"), "hoist\n").unwrap();
    fs::write(root.path().join("data"), vec![7u8; 100_000]).unwrap();
    root
}

fn decompressor(compression: Compression) -> Option<&'static str> {
    match compression {
        Compression::None => None,
        Compression::Gzip => Some("gzip"),
        Compression::Zstd => Some("zstd"),
    }
}

#[test]
fn summary_digests_match_sha256sum_for_every_compression() {
    let tree = sample_tree();
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let mut bytes = Vec::new();
        let summary = write_dir(tree.path(), &mut bytes, compression).unwrap();
        assert_eq!(summary.digest.to_string(), system_sha256(&bytes, None), "{compression:?}");
        assert_eq!(
            summary.diff_id.to_string(),
            system_sha256(&bytes, decompressor(compression)),
            "{compression:?}"
        );
        assert_eq!(summary.size, bytes.len() as u64);
        assert_eq!(Compression::detect(&bytes), compression);
        if compression == Compression::None {
            assert_eq!(summary.diff_id, summary.digest);
            assert_eq!(summary.uncompressed_size, summary.size);
        }
    }
}

#[test]
fn extract_reports_the_digests_and_sizes_the_writer_reported() {
    let tree = sample_tree();
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let mut bytes = Vec::new();
        let summary = write_dir(tree.path(), &mut bytes, compression).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let stats = extract(&bytes[..], dest.path(), &ExtractOptions::default()).unwrap();
        assert_eq!(stats.compression, compression);
        assert_eq!(stats.digest, summary.digest);
        assert_eq!(stats.diff_id, summary.diff_id);
        assert_eq!(stats.size, summary.size);
        assert_eq!(stats.uncompressed_size, summary.uncompressed_size);
        assert_eq!(stats.entries, 3);
        assert_eq!(fs::read(dest.path().join("etc/hostname")).unwrap(), b"hoist\n");
    }
}

#[test]
fn extract_accepts_matching_expected_digests() {
    let mut bytes = Vec::new();
    let summary = write_dir(sample_tree().path(), &mut bytes, Compression::Zstd).unwrap();
    let options = ExtractOptions {
        expected_digest: Some(summary.digest),
        expected_diff_id: Some(summary.diff_id),
        ..ExtractOptions::default()
    };
    let dest = tempfile::tempdir().unwrap();
    extract(&bytes[..], dest.path(), &options).unwrap();
}

#[test]
fn a_wrong_expected_digest_fails_naming_both_digests() {
    let mut bytes = Vec::new();
    let summary = write_dir(sample_tree().path(), &mut bytes, Compression::Gzip).unwrap();
    let wrong = Digest::sha256(b"something else");
    let options = ExtractOptions { expected_digest: Some(wrong), ..ExtractOptions::default() };
    let dest = tempfile::tempdir().unwrap();
    let err = extract(&bytes[..], dest.path(), &options).unwrap_err();
    assert!(
        matches!(err, LayerError::DigestMismatch { expected, actual } if expected == wrong && actual == summary.digest),
        "{err}"
    );
    assert!(err.to_string().contains(&summary.digest.to_string()));
}

#[test]
fn a_wrong_expected_diff_id_fails() {
    let mut bytes = Vec::new();
    let summary = write_dir(sample_tree().path(), &mut bytes, Compression::Gzip).unwrap();
    let options = ExtractOptions {
        // The compressed digest is not the diff_id of a compressed layer.
        expected_diff_id: Some(summary.digest),
        ..ExtractOptions::default()
    };
    let dest = tempfile::tempdir().unwrap();
    let err = extract(&bytes[..], dest.path(), &options).unwrap_err();
    assert!(matches!(err, LayerError::DiffIdMismatch { actual, .. } if actual == summary.diff_id), "{err}");
}

#[test]
fn a_layer_made_by_gnu_tar_and_gzip_extracts_with_matching_digests() {
    let tree = sample_tree();
    let work = tempfile::tempdir().unwrap();
    let layer = work.path().join("layer.tar.gz");
    let status =
        Command::new("tar").arg("-czf").arg(&layer).arg("-C").arg(tree.path()).arg(".").status().unwrap();
    assert!(status.success());
    let bytes = fs::read(&layer).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let stats = extract(&bytes[..], dest.path(), &ExtractOptions::default()).unwrap();
    assert_eq!(stats.digest.to_string(), system_sha256(&bytes, None));
    assert_eq!(stats.diff_id.to_string(), system_sha256(&bytes, Some("gzip")));
    assert_eq!(fs::read(dest.path().join("data")).unwrap(), vec![7u8; 100_000]);
}

#[test]
fn trailing_padding_after_the_end_of_archive_counts_in_the_diff_id() {
    // GNU tar pads to a 10 KiB record; the diff_id covers the padding too.
    let mut tar = raw_tar::RawTar::new().file("f", b"x").finish();
    tar.resize(10240, 0);
    let dest = tempfile::tempdir().unwrap();
    let stats = extract(&tar[..], dest.path(), &ExtractOptions::default()).unwrap();
    assert_eq!(stats.diff_id, Digest::sha256(&tar));
    assert_eq!(stats.uncompressed_size, 10240);
}

#[test]
fn digests_are_computed_while_reading_a_pipe() {
    // A child process writes the layer into a pipe: nothing can be re-read.
    let mut bytes = Vec::new();
    let summary = write_dir(sample_tree().path(), &mut bytes, Compression::Gzip).unwrap();
    let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&bytes).unwrap());
    let dest = tempfile::tempdir().unwrap();
    let stats = extract(child.stdout.take().unwrap(), dest.path(), &ExtractOptions::default()).unwrap();
    writer.join().unwrap();
    child.wait().unwrap();
    assert_eq!(stats.digest, summary.digest);
    assert_eq!(stats.diff_id, summary.diff_id);
    assert!(Path::new(&dest.path().join("etc/hostname")).exists());
}
