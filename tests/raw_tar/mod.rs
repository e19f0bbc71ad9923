//! Tar streams built header by header, so tests can write what no
//! well-behaved writer would: `..`, absolute names, links out, cut streams.
#![allow(dead_code)]

pub struct RawTar {
    bytes: Vec<u8>,
}

pub const FILE: u8 = b'0';
pub const HARDLINK: u8 = b'1';
pub const SYMLINK: u8 = b'2';
pub const CHAR: u8 = b'3';
pub const BLOCK: u8 = b'4';
pub const DIR: u8 = b'5';
pub const FIFO: u8 = b'6';
pub const PAX: u8 = b'x';

impl RawTar {
    pub fn new() -> RawTar {
        RawTar { bytes: Vec::new() }
    }

    /// A member with `name` written straight into the header's name field
    /// (at most 100 bytes), bypassing the tar crate's path checks.
    pub fn entry(self, type_flag: u8, name: &[u8], link: &[u8], data: &[u8]) -> RawTar {
        let mode = if type_flag == DIR { 0o755 } else { 0o644 };
        self.member(type_flag, name, link, mode, (0, 0), data)
    }

    pub fn entry_with_mode(self, type_flag: u8, name: &str, mode: u32, data: &[u8]) -> RawTar {
        self.member(type_flag, name.as_bytes(), b"", mode, (0, 0), data)
    }

    pub fn owned_file(self, name: &str, uid: u64, gid: u64) -> RawTar {
        self.member(FILE, name.as_bytes(), b"", 0o644, (uid, gid), b"owned")
    }

    fn member(
        self,
        type_flag: u8,
        name: &[u8],
        link: &[u8],
        mode: u32,
        (uid, gid): (u64, u64),
        data: &[u8],
    ) -> RawTar {
        let mut header = tar::Header::new_ustar();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        header.as_old_mut().linkflag[0] = type_flag;
        header.set_mode(mode);
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_mtime(1_600_000_000);
        header.set_size(data.len() as u64);
        header.set_device_major(0).unwrap();
        header.set_device_minor(0).unwrap();
        header.set_cksum();
        self.raw(header.as_bytes()).data(data)
    }

    /// Appends bytes as they are (a header made elsewhere).
    pub fn raw(mut self, bytes: &[u8]) -> RawTar {
        self.bytes.extend_from_slice(bytes);
        self
    }

    fn data(mut self, data: &[u8]) -> RawTar {
        self.bytes.extend_from_slice(data);
        self.bytes.resize(self.bytes.len().next_multiple_of(512), 0);
        self
    }

    pub fn file(self, name: &str, data: &[u8]) -> RawTar {
        self.entry(FILE, name.as_bytes(), b"", data)
    }

    pub fn dir(self, name: &str) -> RawTar {
        self.entry(DIR, name.as_bytes(), b"", b"")
    }

    pub fn symlink(self, name: &str, target: &str) -> RawTar {
        self.entry(SYMLINK, name.as_bytes(), target.as_bytes(), b"")
    }

    pub fn hardlink(self, name: &str, target: &str) -> RawTar {
        self.entry(HARDLINK, name.as_bytes(), target.as_bytes(), b"")
    }

    /// A PAX extended header applying `records` to the next member.
    pub fn pax(self, records: &[(&str, &[u8])]) -> RawTar {
        let mut data = Vec::new();
        for (key, value) in records {
            let body = key.len() + value.len() + 3;
            let mut len = body + 1;
            while body + len.to_string().len() != len {
                len = body + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        self.entry(PAX, b"PaxHeaders.0/x", b"", &data)
    }

    /// The stream with its end-of-archive blocks.
    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(&[0; 1024]);
        self.bytes
    }

    /// The stream without end-of-archive blocks, as if cut after the last member.
    pub fn unterminated(self) -> Vec<u8> {
        self.bytes
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}
