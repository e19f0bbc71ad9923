//! User and group ids across a user namespace: which host id a container id is.
//!
//! - [`IdRange`] and [`IdMap`]: container ↔ host id ranges, as the OCI
//!   runtime spec's `LinuxIDMapping` lists them, with the translations both ways.
//! - [`IdMap::rootless`]: the maps a rootless process's user namespace gets:
//!   its own uid and gid become 0, its ranges in /etc/subuid and /etc/subgid
//!   become 1…n (the sandbox writes them with [`NEWUIDMAP`] and [`NEWGIDMAP`]).
//! - [`rootless`]: whether this process needs a user namespace at all;
//!   [`effective_uid`] and [`effective_gid`]: the ids it runs as on the host.
//! - A foundation module: it imports nothing from the rest of the crate.

use std::path::Path;

/// The setuid helper that writes a uid map with subordinate ids.
pub const NEWUIDMAP: &str = "/usr/bin/newuidmap";
/// The setuid helper that writes a gid map with subordinate ids.
pub const NEWGIDMAP: &str = "/usr/bin/newgidmap";

/// What the kernel shows for a host id a user namespace does not map.
pub const OVERFLOW_ID: u64 = 65534;

/// Whether this process needs a user namespace to act as root, i.e. it is
/// not root: sandboxes, unpacking and the store's location all follow it.
pub fn rootless() -> bool {
    !rustix::process::geteuid().is_root()
}

/// The effective uid of this process on the host, for comparing with the
/// owner of a file it made.
pub fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The effective gid of this process on the host.
pub fn effective_gid() -> u32 {
    rustix::process::getegid().as_raw()
}

/// `size` ids starting at `container_id` inside the namespace are the ids
/// starting at `host_id` outside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRange {
    /// The first id as the container (and a layer) sees it.
    pub container_id: u32,
    /// The first id as the host (and the disk) sees it.
    pub host_id: u32,
    /// How many consecutive ids the range holds.
    pub size: u32,
}

impl IdRange {
    fn to_host(self, container: u64) -> Option<u64> {
        let offset = container.checked_sub(self.container_id.into())?;
        (offset < u64::from(self.size)).then(|| u64::from(self.host_id) + offset)
    }

    fn to_container(self, host: u64) -> Option<u64> {
        let offset = host.checked_sub(self.host_id.into())?;
        (offset < u64::from(self.size)).then(|| u64::from(self.container_id) + offset)
    }

    fn container_end(self) -> u64 {
        u64::from(self.container_id) + u64::from(self.size)
    }
}

/// The uid and gid ranges of one user namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdMap {
    /// User id ranges, in the order the kernel's `uid_map` lists them.
    pub uids: Vec<IdRange>,
    /// Group id ranges, in the order the kernel's `gid_map` lists them.
    pub gids: Vec<IdRange>,
}

impl IdMap {
    /// The maps a user namespace made by this process gets: the caller's
    /// uid and gid as 0 and, when both /etc/subuid and /etc/subgid give it a
    /// range and [`NEWUIDMAP`] and [`NEWGIDMAP`] are installed to write them,
    /// those ranges as 1…n. Otherwise only 0 is mapped.
    pub fn rootless() -> IdMap {
        let (uid, gid) = (effective_uid(), effective_gid());
        let name = user_name(uid);
        let helpers = [NEWUIDMAP, NEWGIDMAP].iter().all(|helper| Path::new(helper).exists());
        let read = |file: &str| std::fs::read_to_string(file).unwrap_or_default();
        let subordinate = helpers
            .then(|| {
                let uids = subordinate_range(&read("/etc/subuid"), name.as_deref(), uid);
                let gids = subordinate_range(&read("/etc/subgid"), name.as_deref(), uid);
                uids.zip(gids)
            })
            .flatten();
        rootless_map(uid, gid, subordinate)
    }

    /// The host uid of container uid `container`, if the map covers it.
    pub fn host_uid(&self, container: u64) -> Option<u64> {
        self.uids.iter().find_map(|range| range.to_host(container))
    }

    /// The host gid of container gid `container`, if the map covers it.
    pub fn host_gid(&self, container: u64) -> Option<u64> {
        self.gids.iter().find_map(|range| range.to_host(container))
    }

    /// The uid the container sees for a file owned by `host` on disk
    /// ([`OVERFLOW_ID`] when the map does not cover it, as the kernel shows).
    pub fn container_uid(&self, host: u64) -> u64 {
        self.uids.iter().find_map(|range| range.to_container(host)).unwrap_or(OVERFLOW_ID)
    }

    /// The gid the container sees for a file owned by `host` on disk.
    pub fn container_gid(&self, host: u64) -> u64 {
        self.gids.iter().find_map(|range| range.to_container(host)).unwrap_or(OVERFLOW_ID)
    }

    /// The first container uid and gid past the highest the map covers.
    pub fn container_ends(&self) -> (u64, u64) {
        let end = |ranges: &[IdRange]| ranges.iter().map(|r| r.container_end()).max().unwrap_or(0);
        (end(&self.uids), end(&self.gids))
    }

    /// Whether no container id but 0 is mapped (a rootless user without
    /// subordinate ids): files can then have no other owner.
    pub fn maps_only_root(&self) -> bool {
        let (uid_end, gid_end) = self.container_ends();
        uid_end <= 1 || gid_end <= 1
    }

    /// The map as a process inside the namespace sees it: every container
    /// id the map covers is that id itself.
    pub fn as_seen_inside(&self) -> IdMap {
        let identity = |ranges: &[IdRange]| -> Vec<IdRange> {
            ranges.iter().map(|r| IdRange { host_id: r.container_id, ..*r }).collect()
        };
        IdMap { uids: identity(&self.uids), gids: identity(&self.gids) }
    }
}

/// The caller as 0, its subordinate `(start, count)` ranges as 1…n.
fn rootless_map(uid: u32, gid: u32, subordinate: Option<((u32, u32), (u32, u32))>) -> IdMap {
    let own = |id: u32| IdRange { container_id: 0, host_id: id, size: 1 };
    let sub = |(start, count): (u32, u32)| IdRange { container_id: 1, host_id: start, size: count };
    match subordinate {
        Some((uids, gids)) => IdMap { uids: vec![own(uid), sub(uids)], gids: vec![own(gid), sub(gids)] },
        None => IdMap { uids: vec![own(uid)], gids: vec![own(gid)] },
    }
}

/// The first `name:start:count` (or `uid:start:count`) line of an
/// /etc/subuid or /etc/subgid text for the user, with a non-zero count.
fn subordinate_range(text: &str, name: Option<&str>, uid: u32) -> Option<(u32, u32)> {
    let uid = uid.to_string();
    text.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        let who = fields.next()?;
        if Some(who) != name && who != uid {
            return None;
        }
        let start = fields.next()?.parse().ok()?;
        let count: u32 = fields.next()?.parse().ok()?;
        (count > 0).then_some((start, count))
    })
}

/// The passwd name of `uid`, through NSS as `id -un` finds it: subuid
/// files name users, and a user may come from LDAP rather than /etc/passwd.
fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero `passwd` is a valid value of the plain C struct
    // (null pointers, zero ids); getpwuid_r fills it.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result = std::ptr::null_mut();
    // SAFETY: every pointer is to a live local of the right type and `buf`
    // is as long as the length passed; getpwuid_r writes only within them
    // and is thread-safe.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points at a NUL-terminated string inside
    // `buf`, which outlives this borrow.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(container_id: u32, host_id: u32, size: u32) -> IdRange {
        IdRange { container_id, host_id, size }
    }

    #[test]
    fn container_ids_translate_to_host_ids_within_their_range() {
        let map = IdMap { uids: vec![range(0, 100_000, 65536)], gids: vec![range(0, 200_000, 10)] };
        assert_eq!(map.host_uid(1000), Some(101_000));
        assert_eq!(map.host_gid(5), Some(200_005));
    }

    #[test]
    fn a_container_id_past_every_range_has_no_host_id() {
        let map = IdMap { uids: vec![range(0, 100_000, 65536)], gids: vec![range(0, 200_000, 10)] };
        assert_eq!(map.host_gid(10), None);
        assert_eq!(map.host_uid(u64::from(u32::MAX) + 1), None);
    }

    #[test]
    fn unmapped_host_ids_become_the_overflow_id() {
        let map = IdMap { uids: vec![range(0, 1000, 1)], gids: vec![range(1, 100_000, 65536)] };
        assert_eq!(map.container_uid(1000), 0);
        assert_eq!(map.container_uid(0), OVERFLOW_ID);
        assert_eq!(map.container_gid(100_004), 5);
    }

    #[test]
    fn the_rootless_map_makes_the_caller_root_and_its_subordinate_ids_1_to_n() {
        let map = rootless_map(1000, 1001, Some(((400_000, 65536), (500_000, 100))));
        assert_eq!(map.host_uid(0), Some(1000));
        assert_eq!(map.host_uid(1), Some(400_000));
        assert_eq!(map.host_gid(100), Some(500_099));
        assert_eq!(map.container_ends(), (65537, 101));
        assert!(!map.maps_only_root());
    }

    #[test]
    fn without_subordinate_ids_only_root_is_mapped() {
        let map = rootless_map(1000, 1001, None);
        assert_eq!(map.uids, [range(0, 1000, 1)]);
        assert_eq!(map.gids, [range(0, 1001, 1)]);
        assert!(map.maps_only_root());
    }

    #[test]
    fn inside_the_namespace_every_mapped_id_is_itself() {
        let map = rootless_map(1000, 1001, Some(((400_000, 65536), (500_000, 65536))));
        let inside = map.as_seen_inside();
        assert_eq!(inside.host_uid(0), Some(0));
        assert_eq!(inside.host_uid(1234), Some(1234));
        assert_eq!(inside.host_gid(65537), None);
    }

    #[test]
    fn subordinate_ranges_are_found_by_name_or_uid() {
        let text = "other:100000:65536\nalice:200000:65536\n1002:300000:10\n";
        assert_eq!(subordinate_range(text, Some("alice"), 1001), Some((200_000, 65536)));
        assert_eq!(subordinate_range(text, None, 1002), Some((300_000, 10)));
        assert_eq!(subordinate_range(text, Some("bob"), 1003), None);
    }

    #[test]
    fn an_empty_or_malformed_subordinate_range_is_no_range() {
        let text = "alice:200000:0\nalice:x:10\nalice:300000\n";
        assert_eq!(subordinate_range(text, Some("alice"), 1001), None);
    }
}
