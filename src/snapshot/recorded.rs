//! A copied root's recorded state as bytes: rootless, the copy is made
//! (and its state recorded) by the root of a user namespace in a child
//! process, which sends the state back to the caller this way. Both ends
//! are the same binary, so the format is only this file's business:
//! little-endian integers, byte strings as a length and the bytes.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use super::lower::{Recorded, RecordedState};
use crate::layer::{Entry, EntryKind};

pub(super) fn encode(state: &RecordedState) -> Vec<u8> {
    let mut out = Out(Vec::new());
    out.u64(state.len() as u64);
    for (rel, recorded) in state {
        out.bytes(rel.as_os_str().as_bytes());
        out.entry(&recorded.entry);
        out.u64(recorded.mtime_nsec as u64);
        out.u64(recorded.ctime.0 as u64);
        out.u64(recorded.ctime.1 as u64);
        out.u64(recorded.ino);
        out.u64(recorded.nlink);
        out.u64(recorded.generation.into());
        out.bytes(recorded.source.as_os_str().as_bytes());
    }
    out.0
}

/// `None` if `bytes` is not what [`encode`] wrote.
pub(super) fn decode(bytes: &[u8]) -> Option<RecordedState> {
    let mut input = In(bytes);
    let count = input.u64()?;
    let mut state = RecordedState::with_capacity(count.min(1 << 20) as usize);
    for _ in 0..count {
        let rel = input.path()?;
        let recorded = Recorded {
            entry: input.entry()?,
            mtime_nsec: input.u64()? as i64,
            ctime: (input.u64()? as i64, input.u64()? as i64),
            ino: input.u64()?,
            nlink: input.u64()?,
            generation: u32::try_from(input.u64()?).ok()?,
            source: input.path()?,
        };
        state.insert(rel, recorded);
    }
    input.0.is_empty().then_some(state)
}

struct Out(Vec<u8>);

impl Out {
    fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn bytes(&mut self, value: &[u8]) {
        self.u64(value.len() as u64);
        self.0.extend_from_slice(value);
    }

    fn text(&mut self, value: Option<&str>) {
        match value {
            None => self.u64(0),
            Some(text) => {
                self.u64(1);
                self.bytes(text.as_bytes());
            }
        }
    }

    fn entry(&mut self, entry: &Entry) {
        self.bytes(entry.path.as_os_str().as_bytes());
        match &entry.kind {
            EntryKind::Dir => self.u64(0),
            EntryKind::File { size } => {
                self.u64(1);
                self.u64(*size);
            }
            EntryKind::Symlink { target } => {
                self.u64(2);
                self.bytes(target.as_os_str().as_bytes());
            }
            EntryKind::Hardlink { target } => {
                self.u64(3);
                self.bytes(target.as_os_str().as_bytes());
            }
            EntryKind::CharDevice { major, minor } => {
                self.u64(4);
                self.u64((*major).into());
                self.u64((*minor).into());
            }
            EntryKind::BlockDevice { major, minor } => {
                self.u64(5);
                self.u64((*major).into());
                self.u64((*minor).into());
            }
            EntryKind::Fifo => self.u64(6),
            EntryKind::Whiteout => self.u64(7),
            EntryKind::OpaqueWhiteout => self.u64(8),
        }
        self.u64(entry.mode.into());
        self.u64(entry.uid);
        self.u64(entry.gid);
        self.u64(entry.mtime as u64);
        self.text(entry.uname.as_deref());
        self.text(entry.gname.as_deref());
        self.u64(entry.xattrs.len() as u64);
        for (name, value) in &entry.xattrs {
            self.bytes(name.as_bytes());
            self.bytes(value);
        }
    }
}

struct In<'a>(&'a [u8]);

impl In<'_> {
    fn u64(&mut self) -> Option<u64> {
        let (head, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_le_bytes(*head))
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = usize::try_from(self.u64()?).ok()?;
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(head.to_vec())
    }

    fn path(&mut self) -> Option<PathBuf> {
        Some(PathBuf::from(OsString::from_vec(self.bytes()?)))
    }

    fn u32(&mut self) -> Option<u32> {
        u32::try_from(self.u64()?).ok()
    }

    fn text(&mut self) -> Option<Option<String>> {
        match self.u64()? {
            0 => Some(None),
            1 => Some(Some(String::from_utf8(self.bytes()?).ok()?)),
            _ => None,
        }
    }

    fn entry(&mut self) -> Option<Entry> {
        let path = self.path()?;
        let kind = match self.u64()? {
            0 => EntryKind::Dir,
            1 => EntryKind::File { size: self.u64()? },
            2 => EntryKind::Symlink { target: self.path()? },
            3 => EntryKind::Hardlink { target: self.path()? },
            4 => EntryKind::CharDevice { major: self.u32()?, minor: self.u32()? },
            5 => EntryKind::BlockDevice { major: self.u32()?, minor: self.u32()? },
            6 => EntryKind::Fifo,
            7 => EntryKind::Whiteout,
            8 => EntryKind::OpaqueWhiteout,
            _ => return None,
        };
        let mut entry = Entry::new(path, kind);
        entry.mode = self.u32()?;
        entry.uid = self.u64()?;
        entry.gid = self.u64()?;
        entry.mtime = self.u64()? as i64;
        entry.uname = self.text()?;
        entry.gname = self.text()?;
        let mut xattrs = BTreeMap::new();
        for _ in 0..self.u64()? {
            xattrs.insert(OsString::from_vec(self.bytes()?), self.bytes()?);
        }
        entry.xattrs = xattrs;
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(entry: Entry) -> Recorded {
        Recorded {
            entry,
            mtime_nsec: 123_456_789,
            ctime: (-5, 7),
            ino: 42,
            nlink: 2,
            generation: u32::MAX,
            source: PathBuf::from(OsString::from_vec(b"/layers/a/\xffodd".to_vec())),
        }
    }

    #[test]
    fn every_kind_and_field_survives_the_round_trip() {
        let kinds = [
            EntryKind::Dir,
            EntryKind::File { size: u64::MAX },
            EntryKind::Symlink { target: "../t".into() },
            EntryKind::Hardlink { target: "a/b".into() },
            EntryKind::CharDevice { major: 1, minor: 3 },
            EntryKind::BlockDevice { major: 8, minor: 0 },
            EntryKind::Fifo,
            EntryKind::Whiteout,
            EntryKind::OpaqueWhiteout,
        ];
        let mut state = RecordedState::new();
        for (i, kind) in kinds.into_iter().enumerate() {
            let mut entry = Entry::new(format!("p{i}"), kind);
            entry.mode = 0o4755;
            entry.uid = 1000 + i as u64;
            entry.gid = 65534;
            entry.mtime = -1;
            entry.uname = (i % 2 == 0).then(|| "app".to_string());
            entry.xattrs.insert(OsString::from("security.capability"), vec![1, 0, 0, 2]);
            state.insert(PathBuf::from(format!("p{i}")), recorded(entry));
        }
        let decoded = decode(&encode(&state)).expect("decodes");
        assert_eq!(decoded.len(), state.len());
        for (rel, original) in &state {
            let copy = &decoded[rel];
            assert_eq!(copy.entry, original.entry);
            assert_eq!(
                (copy.mtime_nsec, copy.ctime, copy.ino, copy.nlink, copy.generation, &copy.source),
                (
                    original.mtime_nsec,
                    original.ctime,
                    original.ino,
                    original.nlink,
                    original.generation,
                    &original.source
                )
            );
        }
    }

    #[test]
    fn truncated_or_trailing_bytes_are_refused() {
        let mut state = RecordedState::new();
        state.insert("f".into(), recorded(Entry::new("f", EntryKind::File { size: 1 })));
        let bytes = encode(&state);
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
        assert!(decode(&[bytes.as_slice(), &[0]].concat()).is_none());
    }
}
