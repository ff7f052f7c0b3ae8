//! The member table of a tar archive on disk, built in one pass over its headers (data is
//! skipped with `seek`, never read), so a member is read later by position without
//! extracting the archive. Names are cleaned lexically; symlinks and hardlinks between
//! members (old `docker save` output links duplicate layers) are followed inside the table
//! only.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::SourceError;

/// Most members we index (a docker archive has a handful per layer).
const MAX_MEMBERS: usize = 1 << 16;
/// Most links followed to reach one member.
const MAX_LINKS: usize = 16;

#[derive(Debug, Clone)]
enum Member {
    File { offset: u64, size: u64 },
    Link(String),
}

/// An archive's members by name.
#[derive(Debug)]
pub(crate) struct TarMembers {
    file: Arc<File>,
    path: PathBuf,
    members: HashMap<String, Member>,
}

impl TarMembers {
    /// Reads the headers of the tar at `path`.
    pub fn read(path: &Path) -> Result<TarMembers, SourceError> {
        let file = File::open(path).map_err(|e| SourceError::io("open", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| SourceError::io("stat", path, e))?
            .len();
        let bad =
            |detail: String| SourceError::malformed(path, format!("not a valid tar: {detail}"));
        let mut members = HashMap::new();
        let mut archive = tar::Archive::new(&file);
        let entries = archive
            .entries_with_seek()
            .map_err(|e| bad(e.to_string()))?;
        for entry in entries {
            let entry = entry.map_err(|e| bad(e.to_string()))?;
            if members.len() >= MAX_MEMBERS {
                return Err(bad(format!("more than {MAX_MEMBERS} members")));
            }
            let name = clean(&String::from_utf8_lossy(&entry.path_bytes()));
            let header = entry.header();
            let member = match header.entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let (offset, size) = (entry.raw_file_position(), entry.size());
                    if offset.saturating_add(size) > len {
                        return Err(bad(format!(
                            "truncated: member {name} needs {size} bytes at offset {offset}, the \
                             file has {len}"
                        )));
                    }
                    Member::File { offset, size }
                }
                tar::EntryType::Symlink => {
                    let target = link_target(&entry);
                    let parent = name.rsplit_once('/').map_or("", |(p, _)| p);
                    Member::Link(clean(&format!("{parent}/{target}")))
                }
                tar::EntryType::Link => Member::Link(clean(&link_target(&entry))),
                _ => continue,
            };
            members.insert(name, member);
        }
        Ok(TarMembers {
            file: Arc::new(file),
            path: path.to_owned(),
            members,
        })
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How a member is named in messages: `ARCHIVE:NAME`.
    pub fn display(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("{}:{name}", self.path.display()))
    }

    /// Whether `name` is a member (after following links).
    pub fn contains(&self, name: &str) -> bool {
        self.locate(name).is_ok()
    }

    /// Opens member `name` (following links within the archive): a reader and its size.
    pub fn open(&self, name: &str) -> Result<(MemberReader, u64), SourceError> {
        let (offset, size) = self.locate(name)?;
        let reader = MemberReader {
            file: self.file.clone(),
            pos: offset,
            end: offset + size,
        };
        Ok((reader, size))
    }

    fn locate(&self, name: &str) -> Result<(u64, u64), SourceError> {
        let mut name = clean(name);
        for _ in 0..=MAX_LINKS {
            match self.members.get(&name) {
                Some(Member::File { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Link(target)) => name = target.clone(),
                None => {
                    return Err(SourceError::io(
                        "find",
                        self.display(&name),
                        std::io::ErrorKind::NotFound.into(),
                    ));
                }
            }
        }
        Err(SourceError::Unsafe {
            path: self.display(&name),
            reason: format!("more than {MAX_LINKS} links"),
        })
    }
}

fn link_target<R: Read>(entry: &tar::Entry<'_, R>) -> String {
    entry
        .link_name_bytes()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// A member's bytes, read by position (so several readers share one descriptor).
pub(crate) struct MemberReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for MemberReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// `name` cleaned lexically: no leading `/` or `./`, no `.` or empty components, `..` removes
/// the previous component and stops at the root.
pub(crate) fn clean(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn cleans_names() {
        assert_eq!(clean("./a//b/./c"), "a/b/c");
        assert_eq!(clean("/a/../../b"), "b");
        assert_eq!(clean("abc/../def/layer.tar"), "def/layer.tar");
    }
}
