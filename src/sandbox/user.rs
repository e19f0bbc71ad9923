//! Docker's `--user` resolution against the image's own `/etc/passwd` and
//! `/etc/group` (never the host's).

use std::io::Read;
use std::path::Path;

use super::error::SandboxError;
use super::sys;

/// A user as the process will run: ids, supplementary groups and home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// The user id inside the image.
    pub uid: u32,
    /// The primary group id inside the image: the explicit group if one was
    /// given, else passwd's, else 0.
    pub gid: u32,
    /// Supplementary group ids for `setgroups`, the primary group first.
    pub additional_gids: Vec<u32>,
    /// From passwd; `/` when the user is not in passwd (as Docker).
    pub home: String,
    /// The passwd name, when the user has one.
    pub name: Option<String>,
}

/// One line of /etc/passwd (also read by COPY --chown).
pub(crate) struct PasswdEntry {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) home: String,
}

/// One line of /etc/group.
pub(crate) struct GroupEntry {
    pub(crate) name: String,
    pub(crate) gid: u32,
    pub(crate) members: Vec<String>,
}

fn read_image_file(root: &Path, rel: &str) -> Result<String, SandboxError> {
    let mut text = String::new();
    match sys::open_in_root(root, rel) {
        Ok(mut f) => f
            .read_to_string(&mut text)
            .map_err(|source| SandboxError::ImageFile { path: format!("/{rel}"), source })?,
        // An image without passwd/group files is legal; numeric ids still work.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(source) => return Err(SandboxError::ImageFile { path: format!("/{rel}"), source }),
    };
    Ok(text)
}

pub(crate) fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f.get(5).copied().unwrap_or("").to_string(),
            })
        })
        .collect()
}

pub(crate) fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            let members = f
                .get(3)
                .map(|m| m.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
                .unwrap_or_default();
            Some(GroupEntry { name: f[0].to_string(), gid: f[2].parse().ok()?, members })
        })
        .collect()
}

/// Resolves Docker's user syntax (`name`, `uid`, `uid:gid`, `name:group`,
/// `uid:group`, `name:gid`) against `root/etc/passwd` and `root/etc/group`.
/// Symlinks are resolved inside `root`. The supplementary groups are the
/// primary group, then (with no explicit group) the groups listing the user
/// by name; an explicit group replaces the primary group and adds no others.
pub fn resolve_user(root: &Path, user: &str) -> Result<ResolvedUser, SandboxError> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let passwd = parse_passwd(&read_image_file(root, "etc/passwd")?);
    let entry = match user_part.parse::<u32>() {
        Ok(uid) => passwd.iter().find(|e| e.uid == uid),
        Err(_) => Some(
            passwd
                .iter()
                .find(|e| e.name == user_part)
                .ok_or_else(|| SandboxError::UnknownUser(user_part.to_string()))?,
        ),
    };
    let uid = entry.map_or_else(|| user_part.parse().unwrap_or(0), |e| e.uid);
    let mut gid = entry.map_or(0, |e| e.gid);
    let home = entry.map(|e| e.home.clone()).filter(|h| !h.is_empty()).unwrap_or_else(|| "/".to_string());
    let name = entry.map(|e| e.name.clone());

    let needs_groups = group_part.is_some_and(|g| g.parse::<u32>().is_err()) || name.is_some();
    let groups = if needs_groups { parse_group(&read_image_file(root, "etc/group")?) } else { Vec::new() };
    let mut additional_gids = Vec::new();
    match group_part {
        Some(g) if !g.is_empty() => {
            gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => groups
                    .iter()
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| SandboxError::UnknownGroup(g.to_string()))?,
            };
        }
        _ => {
            if let Some(n) = &name {
                for g in groups.iter().filter(|g| g.members.iter().any(|m| m == n)) {
                    if !additional_gids.contains(&g.gid) {
                        additional_gids.push(g.gid);
                    }
                }
            }
        }
    }
    // As containerd does: the primary group leads the supplementary list.
    additional_gids.retain(|&g| g != gid);
    additional_gids.insert(0, gid);
    Ok(ResolvedUser { uid, gid, additional_gids, home, name })
}

/// The ids of `--group-add` groups: numbers as they are, names from
/// `root/etc/group` (symlinks resolved inside `root`).
pub fn resolve_groups(root: &Path, groups: &[String]) -> Result<Vec<u32>, SandboxError> {
    let mut file = None;
    groups
        .iter()
        .map(|group| match group.parse::<u32>() {
            Ok(gid) => Ok(gid),
            Err(_) => {
                if file.is_none() {
                    file = Some(parse_group(&read_image_file(root, "etc/group")?));
                }
                file.iter()
                    .flatten()
                    .find(|e| e.name == *group)
                    .map(|e| e.gid)
                    .ok_or_else(|| SandboxError::UnknownGroup(group.clone()))
            }
        })
        .collect()
}
