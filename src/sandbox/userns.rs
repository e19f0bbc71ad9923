//! A rootless user namespace's id maps ([`IdMap::rootless`]), written for a process.
//!
//! - With subordinate ids, the setuid helpers newuidmap/newgidmap write them.
//! - With only the caller's own ids, this process writes `/proc/<pid>/*_map`
//!   itself, which the kernel allows after `setgroups` is denied.

use std::io;
use std::process::Command;

use crate::idmap::{IdMap, IdRange, NEWGIDMAP, NEWUIDMAP};

/// Why container ids other than 0 are unusable under `map`, or `None` if
/// they are usable.
pub(crate) fn single_mapping_reason(map: &IdMap) -> Option<String> {
    map.maps_only_root().then(|| {
        let uid = map.uids.first().map_or(0, |range| range.host_id);
        format!(
            "no subordinate ids for uid {uid} in /etc/subuid and /etc/subgid (or newuidmap/newgidmap \
             missing), so only uid 0 is mapped"
        )
    })
}

/// Writes `map` as the maps of `pid`, which has just unshared its user
/// namespace.
pub(crate) fn write_maps(map: &IdMap, pid: i32) -> io::Result<()> {
    if map.maps_only_root() {
        let lines = |ranges: &[IdRange]| -> String {
            ranges.iter().map(|r| format!("{} {} {}\n", r.container_id, r.host_id, r.size)).collect()
        };
        std::fs::write(format!("/proc/{pid}/uid_map"), lines(&map.uids))?;
        std::fs::write(format!("/proc/{pid}/setgroups"), "deny")?;
        return std::fs::write(format!("/proc/{pid}/gid_map"), lines(&map.gids));
    }
    run_helper(NEWUIDMAP, pid, &map.uids)?;
    run_helper(NEWGIDMAP, pid, &map.gids)
}

fn run_helper(helper: &str, pid: i32, ranges: &[IdRange]) -> io::Result<()> {
    let args = ranges.iter().flat_map(|r| [r.container_id, r.host_id, r.size]).map(|n| n.to_string());
    let out = Command::new(helper).arg(pid.to_string()).args(args).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{helper} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
