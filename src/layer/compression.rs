use std::io::{self, BufRead, Cursor, Read, Write};

use super::LayerError;

/// How a layer's tar stream is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (RFC 1952), what Docker writes; members may be concatenated.
    Gzip,
    /// zstd frames, smaller and faster to unpack; newer engines read it.
    Zstd,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
// Recognised only to name them in an error: layers in these formats are not
// allowed by the OCI image spec, and a tar parser would report nonsense.
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
const BZIP2_MAGIC: &[u8] = b"BZh";
/// Enough leading bytes to tell every format above apart.
const SNIFF_LEN: usize = 6;

/// Layer media types and what they say about compression. Docker's and
/// containerd's spellings appear in manifests pulled from real registries.
const LAYER_MEDIA_TYPES: &[(&str, Compression)] = &[
    ("application/vnd.oci.image.layer.v1.tar", Compression::None),
    ("application/vnd.oci.image.layer.v1.tar+gzip", Compression::Gzip),
    ("application/vnd.oci.image.layer.v1.tar+zstd", Compression::Zstd),
    ("application/vnd.oci.image.layer.nondistributable.v1.tar", Compression::None),
    ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Compression::Gzip),
    ("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", Compression::Zstd),
    ("application/vnd.docker.image.rootfs.diff.tar", Compression::None),
    ("application/vnd.docker.image.rootfs.diff.tar.gzip", Compression::Gzip),
    ("application/vnd.docker.image.rootfs.diff.tar.zstd", Compression::Zstd),
    ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Compression::Gzip),
];

impl Compression {
    /// The compression of a stream that starts with `magic`; anything that is
    /// neither gzip nor zstd is taken to be a plain tar.
    pub fn detect(magic: &[u8]) -> Compression {
        if magic.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if magic.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The compression a layer media type announces, or `None` for a media
    /// type that is not a layer.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        LAYER_MEDIA_TYPES.iter().find(|(known, _)| *known == media_type).map(|&(_, compression)| compression)
    }

    /// The OCI layer media type for this compression.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// Starts compressing into `out`; call [`Encoder::finish`] to write the
    /// trailer. Output is deterministic: the gzip header carries no time or
    /// name, zstd frames carry a checksum.
    pub fn compress<W: Write>(self, out: W) -> io::Result<Encoder<W>> {
        Ok(Encoder(match self {
            Compression::None => EncoderKind::None(out),
            Compression::Gzip => {
                EncoderKind::Gzip(flate2::write::GzEncoder::new(out, flate2::Compression::default()))
            }
            Compression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(out, 0)?;
                encoder.include_checksum(true)?;
                EncoderKind::Zstd(encoder)
            }
        }))
    }

    /// Decompresses `input`, which is known to use this compression.
    /// Concatenated gzip members and zstd frames are read as one stream.
    pub fn decompress<R: BufRead>(self, input: R) -> io::Result<Decoder<R>> {
        Decoder::new(self, Cursor::new(Vec::new()).chain(input))
    }

    /// The name of a compression format that layers may not use, if `magic`
    /// starts one.
    fn unsupported_format(magic: &[u8]) -> Option<&'static str> {
        if magic.starts_with(XZ_MAGIC) {
            Some("xz")
        } else if magic.starts_with(BZIP2_MAGIC) {
            Some("bzip2")
        } else {
            None
        }
    }
}

/// A streaming compressor made by [`Compression::compress`].
pub struct Encoder<W: Write>(EncoderKind<W>);

enum EncoderKind<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// Writes the end of the compressed stream and returns the output.
    pub fn finish(self) -> io::Result<W> {
        match self.0 {
            EncoderKind::None(w) => Ok(w),
            EncoderKind::Gzip(e) => e.finish(),
            EncoderKind::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            EncoderKind::None(w) => w.write(buf),
            EncoderKind::Gzip(e) => e.write(buf),
            EncoderKind::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            EncoderKind::None(w) => w.flush(),
            EncoderKind::Gzip(e) => e.flush(),
            EncoderKind::Zstd(e) => e.flush(),
        }
    }
}

/// The sniffed first bytes of a stream put back in front of the rest.
type Sniffed<R> = io::Chain<Cursor<Vec<u8>>, R>;

/// A streaming decompressor made by [`Compression::decompress`] or
/// [`Decoder::detect`].
pub struct Decoder<R: BufRead> {
    compression: Compression,
    kind: DecoderKind<R>,
}

enum DecoderKind<R: BufRead> {
    None(Sniffed<R>),
    Gzip(flate2::bufread::MultiGzDecoder<Sniffed<R>>),
    Zstd(zstd::stream::read::Decoder<'static, Sniffed<R>>),
}

impl<R: BufRead> Decoder<R> {
    /// Reads the first bytes of `input` to detect its compression, then
    /// decompresses all of it (the sniffed bytes included). xz and bzip2,
    /// which layers may not use, are refused by name.
    pub fn detect(mut input: R) -> Result<Decoder<R>, LayerError> {
        let failed = |source| LayerError::Input { source };
        let mut magic = vec![0u8; SNIFF_LEN];
        let mut filled = 0;
        while filled < SNIFF_LEN {
            match input.read(&mut magic[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(failed(e)),
            }
        }
        magic.truncate(filled);
        if let Some(format) = Compression::unsupported_format(&magic) {
            return Err(LayerError::UnsupportedCompression { format });
        }
        let compression = Compression::detect(&magic);
        Decoder::new(compression, Cursor::new(magic).chain(input)).map_err(failed)
    }

    fn new(compression: Compression, input: Sniffed<R>) -> io::Result<Decoder<R>> {
        let kind = match compression {
            Compression::None => DecoderKind::None(input),
            Compression::Gzip => DecoderKind::Gzip(flate2::bufread::MultiGzDecoder::new(input)),
            Compression::Zstd => DecoderKind::Zstd(zstd::stream::read::Decoder::with_buffer(input)?),
        };
        Ok(Decoder { compression, kind })
    }

    /// The compression being undone.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The compressed input.
    pub fn get_ref(&self) -> &R {
        match &self.kind {
            DecoderKind::None(r) => r.get_ref().1,
            DecoderKind::Gzip(d) => d.get_ref().get_ref().1,
            DecoderKind::Zstd(d) => d.get_ref().get_ref().1,
        }
    }

    /// The compressed input, positioned wherever decompression left it.
    pub fn into_inner(self) -> R {
        match self.kind {
            DecoderKind::None(r) => r.into_inner().1,
            DecoderKind::Gzip(d) => d.into_inner().into_inner().1,
            DecoderKind::Zstd(d) => d.finish().into_inner().1,
        }
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.kind {
            DecoderKind::None(r) => r.read(buf),
            DecoderKind::Gzip(d) => d.read(buf),
            DecoderKind::Zstd(d) => d.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(compression: Compression, data: &[u8]) -> Vec<u8> {
        let mut encoder = compression.compress(Vec::new()).unwrap();
        encoder.write_all(data).unwrap();
        let compressed = encoder.finish().unwrap();
        let mut decoder = Decoder::detect(&compressed[..]).unwrap();
        assert_eq!(decoder.compression(), compression);
        let mut out = Vec::new();
        decoder.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn detect_recognises_gzip_and_zstd_magic() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Compression::Zstd);
    }

    #[test]
    fn detect_takes_anything_else_for_plain_tar() {
        assert_eq!(Compression::detect(b"etc/"), Compression::None);
        assert_eq!(Compression::detect(b""), Compression::None);
        assert_eq!(Compression::detect(&[0x1f]), Compression::None);
    }

    #[test]
    fn unsupported_format_names_xz_and_bzip2() {
        assert_eq!(Compression::unsupported_format(&[0xfd, b'7', b'z', b'X', b'Z', 0]), Some("xz"));
        assert_eq!(Compression::unsupported_format(b"BZh91AY"), Some("bzip2"));
        assert_eq!(Compression::unsupported_format(&[0x1f, 0x8b]), None);
    }

    #[test]
    fn media_types_map_to_their_compression() {
        use Compression::*;
        for (media_type, expected) in [
            ("application/vnd.oci.image.layer.v1.tar", None),
            ("application/vnd.oci.image.layer.v1.tar+gzip", Gzip),
            ("application/vnd.oci.image.layer.v1.tar+zstd", Zstd),
            ("application/vnd.docker.image.rootfs.diff.tar.gzip", Gzip),
        ] {
            assert_eq!(Compression::from_media_type(media_type), Some(expected));
            if !media_type.contains("docker") {
                assert_eq!(expected.media_type(), media_type);
            }
        }
        assert_eq!(Compression::from_media_type("application/vnd.oci.image.config.v1+json"), Option::None);
    }

    #[test]
    fn every_compression_round_trips() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            assert_eq!(round_trip(compression, &data), data, "{compression:?}");
        }
    }

    #[test]
    fn empty_plain_stream_round_trips() {
        assert_eq!(round_trip(Compression::None, b""), b"");
    }

    #[test]
    fn gzip_output_is_deterministic() {
        let compress = || {
            let mut e = Compression::Gzip.compress(Vec::new()).unwrap();
            e.write_all(b"same bytes").unwrap();
            e.finish().unwrap()
        };
        assert_eq!(compress(), compress());
    }

    #[test]
    fn concatenated_gzip_members_read_as_one_stream() {
        let mut both = Vec::new();
        for part in [&b"first "[..], b"second"] {
            let mut e = Compression::Gzip.compress(Vec::new()).unwrap();
            e.write_all(part).unwrap();
            both.extend(e.finish().unwrap());
        }
        let mut out = String::new();
        Decoder::detect(&both[..]).unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "first second");
    }

    #[test]
    fn decompress_with_known_compression_does_not_sniff() {
        let mut e = Compression::Zstd.compress(Vec::new()).unwrap();
        e.write_all(b"abc").unwrap();
        let compressed = e.finish().unwrap();
        let mut out = Vec::new();
        Compression::Zstd.decompress(&compressed[..]).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc");
    }
}
