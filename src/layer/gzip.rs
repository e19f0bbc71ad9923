//! gzip of a layer, compressed on every core and the same bytes every time.
//!
//! - [`GzipReader`]: reads a layer and yields one gzip member (RFC 1952)
//!   whose deflate stream is made of independent 1 MiB chunks, compressed
//!   in parallel and joined with sync flushes, as pigz joins them; any
//!   gzip reader reads it.
//! - A chunk that does not compress (random bytes, compressed files) is
//!   stored rather than searched for matches: deflating it would only cost
//!   time. Which chunks those are depends on their bytes alone, so the
//!   output, and its digest, depend only on the input and
//!   [`GZIP_FORMAT`].

use std::io::{self, Read};

use flate2::{Compress, Compression, FlushCompress, Status};
use rayon::prelude::*;

/// Bumped whenever the bytes this module makes for an input change, so that
/// remembered digests of older output are not trusted.
pub const GZIP_FORMAT: u32 = 1;

/// The input is compressed in chunks of this size.
const CHUNK: usize = 1 << 20;
/// How much of a chunk is tried first to tell whether it compresses.
const SAMPLE: usize = 16 << 10;
/// The most a deflate stored block holds.
const STORED_BLOCK: usize = 65_535;
/// A sample that deflates to more than this share of its size is taken as
/// incompressible, and its chunk stored.
const INCOMPRESSIBLE: f64 = 0.97;

/// A reader of the gzip of what `inner` yields.
pub struct GzipReader<R> {
    inner: R,
    level: u32,
    /// Chunks compressed at once (a few per core keeps every core busy).
    batch: usize,
    /// Compressed bytes not yet read, from `at`.
    out: Vec<u8>,
    at: usize,
    crc: crc32fast::Hasher,
    size: u64,
    header_written: bool,
    finished: bool,
    /// A byte read to learn whether the input had ended; the next chunk's first.
    peeked: Vec<u8>,
}

impl<R: Read> GzipReader<R> {
    /// gzip at `level` (0–9) of `inner`.
    pub fn new(inner: R, level: u32) -> GzipReader<R> {
        let threads = rayon::current_num_threads().max(1);
        GzipReader {
            inner,
            level: level.min(9),
            batch: threads * 2,
            out: Vec::new(),
            at: 0,
            crc: crc32fast::Hasher::new(),
            size: 0,
            header_written: false,
            finished: false,
            peeked: Vec::new(),
        }
    }

    /// Reads, compresses and queues the next batch of chunks.
    fn fill(&mut self) -> io::Result<()> {
        if !self.header_written {
            // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=unknown
            self.out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
            self.header_written = true;
        }
        let mut chunks = Vec::with_capacity(self.batch);
        let mut ended = false;
        while chunks.len() < self.batch && !ended {
            let mut chunk = std::mem::take(&mut self.peeked);
            chunk.reserve(CHUNK);
            let wanted = (CHUNK - chunk.len()) as u64;
            (&mut self.inner).take(wanted).read_to_end(&mut chunk)?;
            // Whether this chunk is the last is known before it is
            // compressed, whatever the batch: the same input, the same bytes.
            if chunk.len() == CHUNK {
                let mut next = Vec::new();
                (&mut self.inner).take(1).read_to_end(&mut next)?;
                ended = next.is_empty();
                self.peeked = next;
            } else {
                ended = true;
            }
            if chunk.is_empty() {
                break;
            }
            self.crc.update(&chunk);
            self.size += chunk.len() as u64;
            chunks.push(chunk);
        }
        let last = chunks.len().saturating_sub(1);
        let level = self.level;
        let compressed: Vec<io::Result<Vec<u8>>> = chunks
            .par_iter()
            .enumerate()
            .map(|(n, chunk)| deflate_chunk(chunk, level, ended && n == last))
            .collect();
        for chunk in compressed {
            self.out.extend_from_slice(&chunk?);
        }
        if ended {
            if chunks.is_empty() {
                // No input at all: an empty final block.
                self.out.extend_from_slice(&deflate_chunk(&[], level, true)?);
            }
            self.out.extend_from_slice(&self.crc.clone().finalize().to_le_bytes());
            self.out.extend_from_slice(&(self.size as u32).to_le_bytes());
            self.finished = true;
        }
        Ok(())
    }
}

/// Raw deflate of one chunk: stored when it does not compress; ended with a
/// sync flush (byte-aligned, not final) unless `last`.
fn deflate_chunk(chunk: &[u8], level: u32, last: bool) -> io::Result<Vec<u8>> {
    if level == 0 || incompressible(chunk) {
        return Ok(stored(chunk, last));
    }
    let mut compress = Compress::new(Compression::new(level), false);
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    let mut out = Vec::with_capacity(chunk.len() + chunk.len() / 64 + 64);
    loop {
        let consumed = compress.total_in() as usize;
        let status = compress
            .compress_vec(&chunk[consumed..], &mut out, flush)
            .map_err(|e| io::Error::other(format!("gzip: {e}")))?;
        let done = compress.total_in() as usize == chunk.len()
            && match flush {
                FlushCompress::Finish => status == Status::StreamEnd,
                _ => out.len() < out.capacity(),
            };
        if done {
            return Ok(out);
        }
        out.reserve(out.capacity().max(64 << 10));
    }
}

/// Deflate stored blocks (RFC 1951, 3.2.4) holding `chunk`, starting and
/// ending on a byte boundary; the last block is final when `last`.
fn stored(chunk: &[u8], last: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.len() + 5 * (chunk.len() / STORED_BLOCK + 1));
    let mut blocks = chunk.chunks(STORED_BLOCK).peekable();
    if blocks.peek().is_none() {
        out.extend([u8::from(last), 0, 0, 0xff, 0xff]);
        return out;
    }
    while let Some(block) = blocks.next() {
        let final_block = last && blocks.peek().is_none();
        let len = block.len() as u16;
        out.push(u8::from(final_block));
        out.extend(len.to_le_bytes());
        out.extend((!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out
}

/// Whether a chunk's first bytes deflate to barely less than themselves.
fn incompressible(chunk: &[u8]) -> bool {
    if chunk.len() < 4096 {
        return false;
    }
    let sample = &chunk[..chunk.len().min(SAMPLE)];
    let mut compress = Compress::new(Compression::fast(), false);
    let mut out = Vec::with_capacity(sample.len() + 1024);
    if compress.compress_vec(sample, &mut out, FlushCompress::Finish).is_err() {
        return false;
    }
    out.len() as f64 > sample.len() as f64 * INCOMPRESSIBLE
}

impl<R: Read> Read for GzipReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.out.len() && !self.finished {
            self.out.clear();
            self.at = 0;
            self.fill()?;
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8], level: u32) -> Vec<u8> {
        let mut out = Vec::new();
        GzipReader::new(data, level).read_to_end(&mut out).unwrap();
        out
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data).read_to_end(&mut out).unwrap();
        out
    }

    fn mixed(len: usize) -> Vec<u8> {
        // Text-like, then pseudo-random (xorshift), then zeros.
        let mut data: Vec<u8> = (0..len / 3).map(|n| b"layer of a container image "[n % 27]).collect();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        data.extend((0..len / 3).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        }));
        data.resize(len, 0);
        data
    }

    #[test]
    fn any_gzip_reader_reads_it_back() {
        for len in [0, 1, 4095, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 123] {
            let data = mixed(len);
            assert_eq!(gunzip(&gzip(&data, 6)), data, "{len} bytes");
        }
    }

    #[test]
    fn the_same_input_gives_the_same_bytes() {
        let data = mixed(3 * CHUNK + 7);
        assert_eq!(gzip(&data, 6), gzip(&data, 6));
        // The batch size (the number of cores) does not change the output,
        // also when the input ends at a chunk or batch boundary.
        for len in [3 * CHUNK + 7, 2 * CHUNK, 4 * CHUNK] {
            let data = mixed(len);
            for batch in [1, 2, 3, 8] {
                let mut reader = GzipReader::new(data.as_slice(), 6);
                reader.batch = batch;
                let mut out = Vec::new();
                reader.read_to_end(&mut out).unwrap();
                assert_eq!(out, gzip(&data, 6), "{len} bytes in batches of {batch}");
            }
        }
    }

    #[test]
    fn random_chunks_are_stored_and_others_compressed() {
        let data = mixed(3 * CHUNK);
        let out = gzip(&data, 6);
        // The random third barely shrinks; the rest almost vanishes.
        assert!(out.len() > CHUNK - 4096 && out.len() < CHUNK + 65536, "{} bytes", out.len());
        assert!(incompressible(&data[CHUNK..2 * CHUNK]));
        assert!(!incompressible(&data[..CHUNK]));
    }

    #[test]
    fn stored_blocks_are_valid_deflate() {
        for len in [0, 1, STORED_BLOCK, STORED_BLOCK + 1, 3 * STORED_BLOCK + 5] {
            let data = mixed(len);
            let raw = stored(&data, true);
            let mut out = Vec::new();
            flate2::read::DeflateDecoder::new(raw.as_slice()).read_to_end(&mut out).unwrap();
            assert_eq!(out, data, "{len} bytes");
        }
    }

    #[test]
    fn a_reader_that_returns_short_reads_gives_the_same_bytes() {
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(777);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let data = mixed(2 * CHUNK + 5);
        let mut out = Vec::new();
        GzipReader::new(Dribble(&data), 6).read_to_end(&mut out).unwrap();
        assert_eq!(out, gzip(&data, 6));
    }
}
