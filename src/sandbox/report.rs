//! The report pipe: how the sandbox's processes tell the caller what happened.
//!
//! - B's host pid, created mount points, a setup error, the exit status.
//! - Small framed messages, each written with one `write`, so they never
//!   interleave.
//! - The pipe is close-on-exec: a successful exec says nothing.

use std::os::fd::BorrowedFd;
use std::path::PathBuf;

use super::error::SandboxError;
use super::sys;

const PID: u8 = b'P';
const MOUNT_POINT: u8 = b'M';
const REMOVED: u8 = b'R';
const EXITED: u8 = b'X';
const SIGNALED: u8 = b'S';
const ERROR: u8 = b'E';

#[derive(Debug)]
pub(crate) enum Message {
    /// Host pid of the pid-namespace init.
    InitPid(i32),
    MountPoint(PathBuf),
    /// The init removed every created mount point again.
    MountPointsRemoved,
    Exited(i32),
    Signaled(i32),
    Error(SandboxError),
}

fn send(fd: BorrowedFd<'_>, tag: u8, payload: &[u8]) {
    let mut frame = Vec::with_capacity(payload.len() + 5);
    frame.push(tag);
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(payload);
    // Nothing useful can be done about a failed report from a child.
    let _ = sys::write_all(fd, &frame);
}

fn join(fields: &[&str]) -> Vec<u8> {
    fields.join("\0").into_bytes()
}

pub(crate) fn send_message(fd: BorrowedFd<'_>, msg: &Message) {
    use std::os::unix::ffi::OsStrExt;
    match msg {
        Message::InitPid(p) => send(fd, PID, &p.to_le_bytes()),
        Message::MountPoint(p) => send(fd, MOUNT_POINT, p.as_os_str().as_bytes()),
        Message::MountPointsRemoved => send(fd, REMOVED, &[]),
        Message::Exited(c) => send(fd, EXITED, &c.to_le_bytes()),
        Message::Signaled(s) => send(fd, SIGNALED, &s.to_le_bytes()),
        Message::Error(e) => send(fd, ERROR, &encode_error(e)),
    }
}

fn encode_error(e: &SandboxError) -> Vec<u8> {
    match e {
        SandboxError::Exec { program, reason } => join(&["exec", program, reason]),
        SandboxError::UnknownUser(u) => join(&["user", u]),
        SandboxError::UnknownGroup(g) => join(&["group", g]),
        SandboxError::ImageFile { path, source } => join(&["file", path, &source.to_string()]),
        SandboxError::UserNotMapped { user, uid, gid, reason } => {
            join(&["unmapped", user, &uid.to_string(), &gid.to_string(), reason])
        }
        SandboxError::Setup { step, message } => join(&["setup", step, message]),
        other => join(&["setup", "child", &other.to_string()]),
    }
}

fn decode_error(payload: &[u8]) -> SandboxError {
    let text = String::from_utf8_lossy(payload);
    let f: Vec<&str> = text.split('\0').collect();
    let at = |i: usize| f.get(i).copied().unwrap_or("").to_string();
    match f[0] {
        "exec" => SandboxError::Exec { program: at(1), reason: at(2) },
        "user" => SandboxError::UnknownUser(at(1)),
        "group" => SandboxError::UnknownGroup(at(1)),
        "file" => SandboxError::ImageFile { path: at(1), source: std::io::Error::other(at(2)) },
        "unmapped" => SandboxError::UserNotMapped {
            user: at(1),
            uid: at(2).parse().unwrap_or(0),
            gid: at(3).parse().unwrap_or(0),
            reason: at(4),
        },
        _ => SandboxError::Setup { step: at(1), message: at(2) },
    }
}

/// Accumulates bytes from the pipe and yields whole messages.
#[derive(Default)]
pub(crate) struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Message> {
        use std::os::unix::ffi::OsStrExt;
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while self.buf.len() >= 5 {
            let len = u32::from_le_bytes(self.buf[1..5].try_into().unwrap()) as usize;
            if self.buf.len() < 5 + len {
                break;
            }
            let payload = &self.buf[5..5 + len];
            let int = || i32::from_le_bytes(payload.try_into().unwrap_or([0; 4]));
            let msg = match self.buf[0] {
                PID => Message::InitPid(int()),
                MOUNT_POINT => Message::MountPoint(std::ffi::OsStr::from_bytes(payload).into()),
                REMOVED => Message::MountPointsRemoved,
                EXITED => Message::Exited(int()),
                SIGNALED => Message::Signaled(int()),
                _ => Message::Error(decode_error(payload)),
            };
            out.push(msg);
            self.buf.drain(..5 + len);
        }
        out
    }
}
