//! Docker's default capability set and the code that confines a process to it.
//!
//! - [`DEFAULT_CAPABILITIES`] and its mask.
//! - The bounding set and the process's sets narrowed to it, before exec.

use std::io;

use super::sys;

/// Linux capability numbers (`linux/capability.h`) of Docker's default set.
pub const DEFAULT_CAPABILITIES: &[(&str, u32)] = &[
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_FOWNER", 3),
    ("CAP_FSETID", 4),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_SETPCAP", 8),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_NET_RAW", 13),
    ("CAP_SYS_CHROOT", 18),
    ("CAP_MKNOD", 27),
    ("CAP_AUDIT_WRITE", 29),
    ("CAP_SETFCAP", 31),
];

/// [`DEFAULT_CAPABILITIES`] as a bit mask, as `/proc/<pid>/status` prints it.
pub fn default_capability_mask() -> u64 {
    DEFAULT_CAPABILITIES.iter().fold(0, |m, (_, bit)| m | (1u64 << bit))
}

/// Drops every capability outside the default set from the bounding set and
/// clears the ambient set. Must run while the caller still has CAP_SETPCAP.
pub(crate) fn restrict_bounding_set() -> io::Result<()> {
    let keep = default_capability_mask();
    for cap in 0..64u32 {
        if keep & (1 << cap) != 0 {
            continue;
        }
        // Up to the kernel's last capability, whether rustix names it or not.
        if !sys::drop_from_bounding_set(cap)? {
            break;
        }
    }
    sys::clear_ambient_capabilities()
}

/// Limits effective and permitted to the default set (intersected with what
/// the thread has: nothing after switching to a non-root uid), inheritable to
/// none.
pub(crate) fn restrict_process_sets() -> io::Result<()> {
    let have = sys::permitted_capabilities()?;
    sys::set_capabilities(have & default_capability_mask())
}
