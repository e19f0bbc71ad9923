//! User-namespace id maps for rootless runs: the caller's uid/gid becomes 0,
//! and its subordinate ranges (from /etc/subuid, /etc/subgid, written with the
//! setuid helpers newuidmap/newgidmap) become 1…n.

use std::io;
use std::path::Path;
use std::process::Command;

use super::sys;
use crate::layer::IdMapping;

/// The mapping a rootless sandbox gets.
#[derive(Debug, Clone)]
pub(crate) struct IdMaps {
    pub uid: u32,
    pub gid: u32,
    /// `(start, count)` from /etc/subuid and /etc/subgid, when both exist
    /// and the helpers are installed.
    pub sub: Option<((u32, u32), (u32, u32))>,
}

impl IdMaps {
    pub fn for_current_user() -> IdMaps {
        let (uid, gid) = sys::effective_ids();
        let name = sys::user_name(uid);
        let helpers = ["/usr/bin/newuidmap", "/usr/bin/newgidmap"];
        let sub = if helpers.iter().all(|h| Path::new(h).exists()) {
            let u = subordinate_range(Path::new("/etc/subuid"), name.as_deref(), uid);
            let g = subordinate_range(Path::new("/etc/subgid"), name.as_deref(), uid);
            u.zip(g)
        } else {
            None
        };
        IdMaps { uid, gid, sub }
    }

    /// Why ids other than 0 are unusable, or `None` if they are.
    pub fn single_mapping_reason(&self) -> Option<String> {
        match self.sub {
            Some(_) => None,
            None => Some(format!(
                "no subordinate ids for uid {} in /etc/subuid and /etc/subgid (or newuidmap/newgidmap \
                 missing), so only uid 0 is mapped",
                self.uid
            )),
        }
    }

    /// The same maps as container id → host id ranges (uids, gids).
    pub fn mappings(&self) -> (Vec<IdMapping>, Vec<IdMapping>) {
        let own = |id: u32| IdMapping { container_id: 0, host_id: id, size: 1 };
        let sub = |(start, count): (u32, u32)| IdMapping { container_id: 1, host_id: start, size: count };
        match self.sub {
            Some((u, g)) => (vec![own(self.uid), sub(u)], vec![own(self.gid), sub(g)]),
            None => (vec![own(self.uid)], vec![own(self.gid)]),
        }
    }

    /// Writes the maps of `pid`, which has just unshared its user namespace.
    pub fn apply(&self, pid: i32) -> io::Result<()> {
        match self.sub {
            Some(((us, uc), (gs, gc))) => {
                run_helper("/usr/bin/newuidmap", pid, self.uid, us, uc)?;
                run_helper("/usr/bin/newgidmap", pid, self.gid, gs, gc)
            }
            None => {
                std::fs::write(format!("/proc/{pid}/uid_map"), format!("0 {} 1\n", self.uid))?;
                std::fs::write(format!("/proc/{pid}/setgroups"), "deny")?;
                std::fs::write(format!("/proc/{pid}/gid_map"), format!("0 {} 1\n", self.gid))
            }
        }
    }
}

fn run_helper(helper: &str, pid: i32, own: u32, start: u32, count: u32) -> io::Result<()> {
    let out = Command::new(helper)
        .args([pid.to_string(), "0".into(), own.to_string(), "1".into()])
        .args(["1".to_string(), start.to_string(), count.to_string()])
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{helper} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The first `name:start:count` (or `uid:start:count`) line for the user.
fn subordinate_range(file: &Path, name: Option<&str>, uid: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    let uid = uid.to_string();
    text.lines().find_map(|line| {
        let mut f = line.trim().split(':');
        let who = f.next()?;
        if Some(who) != name && who != uid {
            return None;
        }
        let start = f.next()?.parse().ok()?;
        let count: u32 = f.next()?.parse().ok()?;
        (count > 0).then_some((start, count))
    })
}
