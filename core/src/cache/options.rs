//! [`CacheOptions`]: how a process opens a cache, as plain data (serde camelCase, unknown keys
//! refused, like `RegistryConfig`): shared read-only with a group (`group`), and opened as a
//! reader that never writes (`readOnly`). `GlobalCache::with_options` takes it; the CLI fills
//! it from `--cache-group` / `--read-only` and `$MSBIMAGE_CACHE_GROUP` /
//! `$MSBIMAGE_CACHE_READ_ONLY`.

use std::path::Path;

use super::CacheError;

/// How to open a cache (see `cache/LAYOUT.md`, "Sharing a cache with a group").
///
/// ```
/// use microsandbox_image::cache::{CacheGroup, CacheOptions};
/// let writer: CacheOptions = serde_json::from_str(r#"{"group": "sandboxes"}"#)?;
/// assert_eq!(writer.group, Some(CacheGroup::Name("sandboxes".into())));
/// let reader: CacheOptions = serde_json::from_str(r#"{"readOnly": true}"#)?;
/// assert!(reader.read_only && reader.group.is_none());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheOptions {
    /// Share the cache read-only with this group: the owner creates the root and every
    /// directory `2750` with that group, and every file `0640`. Nothing is ever group-writable.
    /// A cache whose root is already shared so stays shared when opened without it (the root's
    /// group is kept). The opening user must be root or a member of the group.
    pub group: Option<CacheGroup>,
    /// Open without ever writing: for a user who can read a cache another user owns and
    /// writes (a sandbox reading a service's cache). The root may belong to another user,
    /// provided every cache directory has the root's owner and nothing is writable by group or
    /// others. Warm pulls, `inspect`, `ls`, `du` and layer stacks work; anything that needs a
    /// write fails with [`CacheError::ReadOnly`] naming what is missing. `group` is ignored
    /// then (a reader creates nothing).
    pub read_only: bool,
}

/// A group, by name (looked up in `/etc/group`) or number.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum CacheGroup {
    /// A numeric gid.
    Gid(u32),
    /// A group name, or a gid written as digits.
    Name(String),
}

impl std::str::FromStr for CacheGroup {
    type Err = std::convert::Infallible;
    /// `"1001"` is a gid, anything else a name.
    fn from_str(s: &str) -> Result<CacheGroup, Self::Err> {
        Ok(match s.trim().parse() {
            Ok(gid) => CacheGroup::Gid(gid),
            Err(_) => CacheGroup::Name(s.trim().to_owned()),
        })
    }
}

impl std::fmt::Display for CacheGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheGroup::Gid(g) => write!(f, "{g}"),
            CacheGroup::Name(n) => f.write_str(n),
        }
    }
}

/// The group database read by [`CacheGroup::gid`]. Groups known only to NSS services
/// (LDAP, sssd) are not in it: name them by number.
const GROUP_FILE: &str = "/etc/group";

impl CacheGroup {
    /// The numeric gid: a number as is, a name (or digits) through `/etc/group`.
    pub fn gid(&self) -> Result<u32, CacheError> {
        let path = Path::new(GROUP_FILE);
        let not_found = |why: String| CacheError::Io {
            op: "find group",
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, why),
        };
        let gid = match self {
            CacheGroup::Gid(g) => *g,
            CacheGroup::Name(n) => match n.parse() {
                Ok(gid) => gid,
                Err(_) => {
                    let text =
                        std::fs::read_to_string(path).map_err(CacheError::io("read", path))?;
                    gid_in(&text, n).ok_or_else(|| {
                        not_found(format!(
                            "no group {n:?} (name it by its numeric gid if NSS knows it)"
                        ))
                    })?
                }
            },
        };
        // `-1` means "no change" to chown(2): it is no group.
        if gid == u32::MAX {
            return Err(not_found(format!("{gid} is not a group id")));
        }
        Ok(gid)
    }
}

/// The gid of group `name` in `/etc/group` text (`name:password:gid:members`).
fn gid_in(text: &str, name: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name)
            .then(|| fields.nth(1)?.trim().parse().ok())
            .flatten()
    })
}

/// `$MSBIMAGE_CACHE_GROUP`: the default of `--cache-group`.
pub const GROUP_ENV: &str = "MSBIMAGE_CACHE_GROUP";
/// `$MSBIMAGE_CACHE_READ_ONLY` (`1`/`true`/`yes`): the default of `--read-only`.
pub const READ_ONLY_ENV: &str = "MSBIMAGE_CACHE_READ_ONLY";

impl CacheOptions {
    /// The options the environment asks for ([`GROUP_ENV`], [`READ_ONLY_ENV`]); what the CLI
    /// starts from before its flags.
    pub fn from_env() -> CacheOptions {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        CacheOptions {
            group: var(GROUP_ENV).and_then(|g| g.parse().ok()),
            read_only: var(READ_ONLY_ENV).is_some_and(|v| {
                matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes")
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_number_or_name() {
        assert_eq!("42".parse::<CacheGroup>().unwrap(), CacheGroup::Gid(42));
        assert_eq!(CacheGroup::Name("7".into()).gid().unwrap(), 7);
        assert!(CacheGroup::Gid(u32::MAX).gid().is_err());
        let text = "root:x:0:\nsandbox:x:1001:a,b\nbad:x:notanumber:\n";
        assert_eq!(gid_in(text, "sandbox"), Some(1001));
        assert_eq!(gid_in(text, "root"), Some(0));
        assert_eq!(gid_in(text, "bad"), None);
        assert_eq!(gid_in(text, "sand"), None);
        let e = CacheGroup::Name("no-such-group-here".into())
            .gid()
            .unwrap_err()
            .to_string();
        assert!(e.contains("no-such-group-here"), "{e}");
    }

    #[test]
    fn options_as_data() {
        let o: CacheOptions = serde_json::from_str(r#"{"group": 1001, "readOnly": true}"#).unwrap();
        assert_eq!(o.group, Some(CacheGroup::Gid(1001)));
        assert!(o.read_only);
        assert!(serde_json::from_str::<CacheOptions>(r#"{"readonly": true}"#).is_err());
    }
}
