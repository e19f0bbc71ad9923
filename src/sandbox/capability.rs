//! Linux capabilities: Docker's default set, their names, and confining a process to a set.
//!
//! - [`DEFAULT_CAPABILITIES`] and its mask; [`capability_mask`] applies
//!   `--cap-add` / `--cap-drop` to it.
//! - The bounding set and the process's sets narrowed to a mask, before exec.

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

/// Every capability Linux defines, by number (`linux/capability.h`, 6.x).
const CAPABILITY_NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// [`DEFAULT_CAPABILITIES`] as a bit mask, as `/proc/<pid>/status` prints it.
pub fn default_capability_mask() -> u64 {
    DEFAULT_CAPABILITIES.iter().fold(0, |m, (_, bit)| m | (1u64 << bit))
}

/// The number of a capability named as Docker takes it: `NET_ADMIN` or
/// `CAP_NET_ADMIN`, in any case.
pub fn capability_number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CAPABILITY_NAMES.iter().position(|n| *n == bare).map(|i| i as u32)
}

/// The default set with `add` added and `drop` taken away, as `docker run
/// --cap-add/--cap-drop` does: `ALL` names every capability; a drop of `ALL`
/// is applied before the adds, any other drop after them.
pub fn capability_mask(add: &[String], drop: &[String]) -> Result<u64, String> {
    let all = (1u64 << CAPABILITY_NAMES.len()) - 1;
    let parse = |name: &String| -> Result<u64, String> {
        if name.eq_ignore_ascii_case("ALL") {
            return Ok(all);
        }
        capability_number(name).map(|n| 1u64 << n).ok_or_else(|| format!("unknown capability: {name:?}"))
    };
    let drops = drop.iter().map(parse).collect::<Result<Vec<u64>, String>>()?;
    let adds = add.iter().map(parse).collect::<Result<Vec<u64>, String>>()?;
    let mut mask = default_capability_mask();
    if drops.contains(&all) {
        mask = 0;
    }
    for add in adds {
        mask |= add;
    }
    for drop in drops.into_iter().filter(|d| *d != all) {
        mask &= !drop;
    }
    Ok(mask)
}

/// Drops every capability outside `keep` from the bounding set and clears
/// the ambient set. Must run while the caller still has CAP_SETPCAP.
pub(crate) fn restrict_bounding_set(keep: u64) -> io::Result<()> {
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

/// Limits effective and permitted to `keep` (intersected with what the
/// thread has: nothing after switching to a non-root uid), inheritable to
/// none.
pub(crate) fn restrict_process_sets(keep: u64) -> io::Result<()> {
    let have = sys::permitted_capabilities()?;
    sys::set_capabilities(have & keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn capabilities_are_named_with_or_without_the_prefix_in_any_case() {
        assert_eq!(capability_number("NET_ADMIN"), Some(12));
        assert_eq!(capability_number("cap_net_admin"), Some(12));
        assert_eq!(capability_number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(capability_number("NET_WIZARD"), None);
    }

    #[test]
    fn every_default_capability_has_its_number_in_the_name_table() {
        for (name, number) in DEFAULT_CAPABILITIES {
            assert_eq!(capability_number(name), Some(*number), "{name}");
        }
    }

    #[test]
    fn added_and_dropped_capabilities_change_the_default_set() {
        let mask = capability_mask(&names(&["NET_ADMIN"]), &names(&["chown"])).unwrap();
        assert_eq!(mask, (default_capability_mask() | 1 << 12) & !1);
    }

    #[test]
    fn drop_all_then_add_keeps_only_the_added() {
        let mask = capability_mask(&names(&["NET_BIND_SERVICE"]), &names(&["ALL"])).unwrap();
        assert_eq!(mask, 1 << 10);
        assert_eq!(capability_mask(&names(&["ALL"]), &[]).unwrap().count_ones(), 41);
    }

    #[test]
    fn an_unknown_capability_is_refused_by_name() {
        let error = capability_mask(&names(&["FLY"]), &[]).unwrap_err();
        assert!(error.contains("FLY"), "{error}");
    }
}
