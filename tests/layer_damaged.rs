//! Layers that are cut short, corrupt, in the wrong format or too big.

mod raw_tar;

use std::io::Write;

use hoist::layer::{Compression, ExtractOptions, LayerError, extract};
use raw_tar::{RawTar, gzip};

fn sample_tar() -> Vec<u8> {
    RawTar::new().dir("etc/").file("etc/hostname", b"hoist\n").file("big", &vec![b'x'; 5000]).finish()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    let mut e = Compression::Zstd.compress(Vec::new()).unwrap();
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn extract_err(bytes: &[u8], options: &ExtractOptions) -> LayerError {
    let dest = tempfile::tempdir().unwrap();
    extract(bytes, dest.path(), options).expect_err("damaged layer accepted")
}

fn err_of(bytes: &[u8]) -> LayerError {
    extract_err(bytes, &ExtractOptions::default())
}

#[test]
fn a_tar_cut_inside_file_data_is_truncated_at_that_entry() {
    let tar = sample_tar();
    let err = err_of(&tar[..512 * 4 + 1000]);
    assert!(matches!(&err, LayerError::Truncated { entry: Some(e) } if e.as_os_str() == "big"), "{err}");
}

#[test]
fn a_tar_without_end_of_archive_blocks_is_truncated() {
    let tar = RawTar::new().file("a", b"x").unterminated();
    let err = err_of(&tar);
    assert!(matches!(&err, LayerError::Truncated { entry: Some(e) } if e.as_os_str() == "a"), "{err}");
}

#[test]
fn a_tar_cut_inside_a_header_is_truncated() {
    let tar = sample_tar();
    let err = err_of(&tar[..512 + 100]);
    assert!(matches!(err, LayerError::Truncated { .. }), "{err}");
}

#[test]
fn an_empty_stream_is_truncated() {
    let err = err_of(b"");
    assert!(matches!(err, LayerError::Truncated { entry: None }), "{err}");
}

#[test]
fn a_gzip_stream_cut_in_half_is_truncated() {
    let gz = gzip(&sample_tar());
    let err = err_of(&gz[..gz.len() / 2]);
    assert!(matches!(err, LayerError::Truncated { .. }), "{err}");
}

#[test]
fn a_gzip_stream_missing_its_trailer_is_truncated() {
    let gz = gzip(&sample_tar());
    let err = err_of(&gz[..gz.len() - 8]);
    assert!(matches!(err, LayerError::Truncated { .. }), "{err}");
}

#[test]
fn a_zstd_stream_cut_short_is_truncated() {
    let zst = zstd(&sample_tar());
    let err = err_of(&zst[..zst.len() - 6]);
    assert!(matches!(err, LayerError::Truncated { .. }), "{err}");
}

#[test]
fn a_gzip_crc_mismatch_is_reported_as_a_corrupt_gzip_stream() {
    let mut gz = gzip(&sample_tar());
    let crc = gz.len() - 8;
    gz[crc] ^= 0xff;
    let err = err_of(&gz);
    assert!(matches!(err, LayerError::Corrupt { what: "gzip stream", .. }), "{err}");
}

#[test]
fn corrupt_compressed_data_is_an_error() {
    let mut gz = gzip(&sample_tar());
    let middle = gz.len() / 2;
    for b in &mut gz[middle..middle + 8] {
        *b ^= 0x5a;
    }
    let err = err_of(&gz);
    assert!(matches!(err, LayerError::Corrupt { .. }), "{err}");
}

#[test]
fn garbage_is_not_a_tar_archive() {
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 253) as u8 | 1).collect();
    let err = err_of(&garbage);
    assert!(matches!(err, LayerError::Corrupt { what: "tar archive", .. }), "{err}");
}

#[test]
fn xz_layers_are_refused_by_name() {
    let err = err_of(&[0xfd, b'7', b'z', b'X', b'Z', 0, 0, 0]);
    assert!(matches!(err, LayerError::UnsupportedCompression { format: "xz" }), "{err}");
}

#[test]
fn a_compression_bomb_stops_at_the_limit() {
    let tar = RawTar::new().file("zeros", &vec![0u8; 8 << 20]).finish();
    let bomb = zstd(&tar);
    assert!(bomb.len() < 4096);
    let options = ExtractOptions { max_uncompressed_bytes: Some(1 << 20), ..ExtractOptions::default() };
    let dest = tempfile::tempdir().unwrap();
    let err = extract(&bomb[..], dest.path(), &options).unwrap_err();
    assert!(matches!(err, LayerError::TooLarge { limit: 1048576, .. }), "{err}");
    let written = std::fs::metadata(dest.path().join("zeros")).map(|m| m.len()).unwrap_or(0);
    assert!(written <= 1 << 20, "wrote {written} bytes past the limit");
}

#[test]
fn a_layer_exactly_at_the_limit_is_accepted() {
    let tar = sample_tar();
    let options =
        ExtractOptions { max_uncompressed_bytes: Some(tar.len() as u64), ..ExtractOptions::default() };
    let dest = tempfile::tempdir().unwrap();
    extract(&gzip(&tar)[..], dest.path(), &options).unwrap();
}

#[test]
fn trailing_garbage_after_a_gzip_stream_is_corrupt() {
    let mut gz = gzip(&sample_tar());
    gz.extend_from_slice(b"this is not another gzip member");
    let err = err_of(&gz);
    assert!(matches!(err, LayerError::Corrupt { .. }), "{err}");
}

#[test]
fn a_failing_reader_is_reported_as_an_input_error() {
    struct Failing(Vec<u8>, usize);
    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.1 >= self.0.len() / 2 {
                return Err(std::io::Error::other("connection reset"));
            }
            let n = buf.len().min(100).min(self.0.len() - self.1);
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }
    let dest = tempfile::tempdir().unwrap();
    let err = extract(Failing(gzip(&sample_tar()), 0), dest.path(), &ExtractOptions::default()).unwrap_err();
    assert!(matches!(err, LayerError::Input { .. }), "{err}");
    assert!(err.to_string().contains("connection reset"));
}

#[test]
fn randomly_damaged_layers_give_errors_never_panics() {
    let tar = RawTar::new()
        .dir("etc/")
        .file("etc/hostname", b"hoist\n")
        .pax(&[("path", b"a/long/name"), ("SCHILY.xattr.user.k", b"v"), ("mtime", b"12.5")])
        .file("x", b"data")
        .symlink("s", "etc")
        .hardlink("h", "etc/hostname")
        .file("etc/.wh.gone", b"")
        .finish();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..400 {
        let mut damaged = if round % 2 == 0 { tar.clone() } else { gzip(&tar) };
        for _ in 0..1 + next() % 4 {
            let at = (next() % damaged.len() as u64) as usize;
            damaged[at] = next() as u8;
        }
        if next() % 3 == 0 {
            damaged.truncate((next() % damaged.len() as u64) as usize);
        }
        let dest = tempfile::tempdir().unwrap();
        // Ok or Err are both fine; a panic fails the test.
        let _ = extract(&damaged[..], dest.path(), &ExtractOptions::default());
    }
}
