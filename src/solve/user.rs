//! `--chown` and `USER` values against an image's /etc/passwd and /etc/group,
//! as BuildKit resolves them for COPY and ADD: a number is taken as is, a
//! name is looked up; without a group (or with an empty one after `:`), a
//! named user gets its primary group and a numeric one a gid equal to its uid.

use crate::sandbox::user::{parse_group, parse_passwd};

/// Resolves `user[:group]` to numeric ids. `passwd` and `group` are the
/// files' contents (empty when the image has none).
pub fn resolve_owner(spec: &str, passwd: &str, group: &str) -> Result<(u32, u32), String> {
    let (user, group_name) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g).filter(|g| !g.is_empty())),
        None => (spec, None),
    };
    if user.is_empty() {
        return Err(format!("invalid --chown={spec}: the user is missing"));
    }
    let (uid, primary) = match user.parse::<u32>() {
        Ok(uid) => (uid, uid),
        Err(_) => {
            let entries = parse_passwd(passwd);
            let entry = entries
                .iter()
                .find(|e| e.name == user)
                .ok_or_else(|| format!("unable to find user {user}: no matching entries in passwd file"))?;
            (entry.uid, entry.gid)
        }
    };
    let gid = match group_name {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => parse_group(group)
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| format!("unable to find group {g}: no matching entries in group file"))?,
        },
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:app\napp:x:1001:\n";

    #[test]
    fn names_take_their_primary_group_and_numbers_their_own_id() {
        assert_eq!(resolve_owner("app", PASSWD, GROUP), Ok((1000, 1001)));
        assert_eq!(resolve_owner("app:", PASSWD, GROUP), Ok((1000, 1001)));
        assert_eq!(resolve_owner("55", PASSWD, GROUP), Ok((55, 55)));
        assert_eq!(resolve_owner("app:staff", PASSWD, GROUP), Ok((1000, 50)));
        assert_eq!(resolve_owner("7:9", "", ""), Ok((7, 9)));
    }

    #[test]
    fn unknown_names_are_errors_naming_the_file() {
        assert!(resolve_owner("ghost", PASSWD, GROUP).unwrap_err().contains("passwd"));
        assert!(resolve_owner("app:ghosts", PASSWD, GROUP).unwrap_err().contains("group file"));
    }
}
