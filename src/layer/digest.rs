use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use super::LayerError;

/// A content digest as OCI writes it: `sha256:` and 64 lowercase hex digits.
///
/// Only sha256 is supported: it is what every registry and `docker load`
/// require for layers, configs and manifests.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn sha256(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// The 64 hex digits after `sha256:`, as used in `blobs/sha256/<hex>`.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl FromStr for Digest {
    type Err = LayerError;

    fn from_str(s: &str) -> Result<Digest, LayerError> {
        let invalid = || LayerError::InvalidDigest { input: s.to_owned() };
        let encoded = s.strip_prefix("sha256:").ok_or_else(invalid)?;
        // Uppercase hex would decode, but the OCI spec only allows lowercase
        // and two spellings of one digest must not name two blobs.
        if encoded.len() != 64 || !encoded.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid());
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(encoded, &mut bytes).map_err(|_| invalid())?;
        Ok(Digest(bytes))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A `Write` that hashes and counts every byte it passes on to `inner`.
pub struct DigestWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> DigestWriter<W> {
    /// Passes writes on to `inner`, starting from zero bytes.
    pub fn new(inner: W) -> DigestWriter<W> {
        DigestWriter { inner, hasher: Sha256::new(), bytes: 0 }
    }

    /// The digest of everything written so far.
    pub fn digest(&self) -> Digest {
        Digest(self.hasher.clone().finalize().into())
    }

    /// How many bytes were written so far.
    pub fn byte_count(&self) -> u64 {
        self.bytes
    }

    /// The writer being digested into.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The writer, once digesting is done.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Hash only what `inner` accepted, so a short write is not counted twice.
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A `Read` that hashes and counts every byte read through it from `inner`.
pub struct DigestReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> DigestReader<R> {
    /// Reads from `inner`, starting from zero bytes.
    pub fn new(inner: R) -> DigestReader<R> {
        DigestReader { inner, hasher: Sha256::new(), bytes: 0 }
    }

    /// The digest of everything read so far.
    pub fn digest(&self) -> Digest {
        Digest(self.hasher.clone().finalize().into())
    }

    /// How many bytes were read so far.
    pub fn byte_count(&self) -> u64 {
        self.bytes
    }

    /// The reader being digested.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The reader, once digesting is done.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn sha256_of_nothing_is_the_well_known_value() {
        assert_eq!(Digest::sha256(b"").to_string(), EMPTY);
    }

    #[test]
    fn display_round_trips_through_parse() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d, Digest::sha256(b""));
    }

    #[test]
    fn parse_rejects_other_algorithms_uppercase_and_wrong_lengths() {
        for bad in [
            "",
            "sha256:",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
            "sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            let err = bad.parse::<Digest>().unwrap_err();
            assert!(matches!(err, LayerError::InvalidDigest { .. }), "{bad:?}");
        }
    }

    #[test]
    fn writer_digest_and_count_match_the_bytes_passed_through() {
        let mut w = DigestWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        assert_eq!(w.digest(), Digest::sha256(b"hello world"));
        assert_eq!(w.byte_count(), 11);
        assert_eq!(w.into_inner(), b"hello world");
    }

    #[test]
    fn reader_digest_and_count_match_the_bytes_read() {
        let mut r = DigestReader::new(&b"hello world"[..]);
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        assert_eq!(r.digest(), Digest::sha256(b"hello world"));
        assert_eq!(r.byte_count(), 11);
    }
}
