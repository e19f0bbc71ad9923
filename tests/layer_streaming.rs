//! A layer far larger than what may be held in memory goes through
//! compression and both digests in one pass. Alone in its test binary, so
//! the process's peak memory is this test's.

use std::io::{self, Read};

use hoist::layer::{Compression, DigestWriter, Entry, EntryKind, LayerWriter};

const LAYER_BYTES: u64 = 256 << 20;

/// Bytes made up on demand: a counter pattern that compresses somewhat,
/// so the compressor does real work, and nothing is ever stored.
struct Synthetic {
    remaining: u64,
    counter: u64,
}

impl Read for Synthetic {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.remaining as usize) & !7;
        for chunk in buf[..n].chunks_exact_mut(8) {
            self.counter = self.counter.wrapping_add(0x9e37_79b9);
            chunk.copy_from_slice(&(self.counter >> 13).to_le_bytes());
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn peak_resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn a_huge_layer_streams_through_compression_and_digests_in_little_memory() {
    let before = peak_resident_bytes();
    // The output is only counted and hashed, never kept.
    let mut out = DigestWriter::new(io::sink());
    let mut layer = LayerWriter::new(&mut out, Compression::Zstd).unwrap();
    let contents = Synthetic { remaining: LAYER_BYTES, counter: 0 };
    layer.append(&Entry::new("huge", EntryKind::File { size: LAYER_BYTES }), contents).unwrap();
    let summary = layer.finish().unwrap();
    assert_eq!(summary.uncompressed_size, 512 + LAYER_BYTES + 1024);
    assert_eq!(summary.size, out.byte_count());
    assert_eq!(summary.digest, out.digest());
    let grown = peak_resident_bytes().saturating_sub(before);
    eprintln!("peak memory grew by {} KiB", grown >> 10);
    assert!(grown < 64 << 20, "peak memory grew by {} MiB", grown >> 20);
}
