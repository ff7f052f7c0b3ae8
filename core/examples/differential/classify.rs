//! The disagreements with containerd we keep, so a run reports them by class and fails only
//! on the rest. Each class is a deliberate choice (`tests/differential/README.md`, "Kept
//! disagreements"). The oracle notes, per case, when containerd met a record where it does
//! what we deliberately do not (it looks at its tree just before applying each record);
//! the archive itself says whether it has empty PAX xattrs. A disagreement is kept only
//! when the classes noted for its case explain it: either the class makes the two trees
//! incomparable (a whiteout or opaque marker over the layer's own entries), or normalising
//! what the class changes makes both listings equal.

use std::collections::BTreeSet;

/// A kept disagreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// A whiteout names an entry of the same layer: containerd deletes it (or fails, in
    /// overlay mode); the OCI spec, umoci and msbimage apply whiteouts to lower layers
    /// only. Trees not compared.
    WhiteoutOfOwnEntry,
    /// An opaque marker in a directory holding entries of the same layer: containerd
    /// deletes those under directories it made as parents (they are not in its "unpacked"
    /// set); umoci and msbimage keep them. Trees not compared.
    OpaqueOverOwnEntries,
    /// A PAX xattr record with an empty value: containerd sets an empty xattr; umoci and
    /// msbimage read it as deleting the xattr (POSIX pax). Empty xattrs not compared.
    EmptyPaxXattr,
    /// A directory containerd made as a parent inside a setgid directory takes that
    /// directory's group (a kernel rule); msbimage's is a root-owned placeholder, the
    /// merged view taking a lower layer's metadata. Such directories' owners not compared.
    SetgidParentGroup,
    /// A directory record over an existing directory: containerd adds its xattrs to the
    /// earlier ones; umoci and msbimage take the last record's set. Directory xattrs not
    /// compared.
    DirectoryMergeXattrs,
    /// containerd sets directory times at the end by name: a directory record whose path
    /// was replaced later gives its time to what is there now, or the apply fails when the
    /// name no longer resolves. Non-directory times not compared.
    DirTimesByName,
    /// containerd applies a hardlink record's mode, owner, times and xattrs to the inode it
    /// links; GNU tar, umoci and msbimage keep the target's. Non-directory metadata not
    /// compared.
    HardlinkRecordMetadata,
    /// Overlay mode: an entry below a name the same layer whited out earlier. containerd's
    /// `OverlayConvertWhiteout` has put a 0/0 device at that name, and making the entry's
    /// parent fails (`not a directory`); naive Apply makes the directory (the whiteout
    /// deleted nothing), and so does msbimage, opaque (it replaces what the lower layers had
    /// at its name), as overlayfs reads a whiteout followed by a directory. containerd's
    /// refusal is kept.
    EntryBelowOwnWhiteout,
}

impl Class {
    fn from_note(note: &str) -> Option<Class> {
        Some(match note {
            "whiteout-of-own-entry" => Class::WhiteoutOfOwnEntry,
            "opaque-over-own-entries" => Class::OpaqueOverOwnEntries,
            "dir-times-by-name" => Class::DirTimesByName,
            "hardlink-record-metadata" => Class::HardlinkRecordMetadata,
            "directory-merge" => Class::DirectoryMergeXattrs,
            "setgid-parent" => Class::SetgidParentGroup,
            "entry-below-own-whiteout" => Class::EntryBelowOwnWhiteout,
            _ => return None,
        })
    }

    /// Whether the class leaves nothing to compare.
    fn incomparable(self) -> bool {
        matches!(
            self,
            Class::WhiteoutOfOwnEntry | Class::OpaqueOverOwnEntries
        )
    }
}

/// The classes that may explain a case: the oracle's notes and the archive's own facts.
pub fn candidates(notes: &[String], tar: &[u8]) -> BTreeSet<Class> {
    let mut out: BTreeSet<Class> = notes.iter().filter_map(|n| Class::from_note(n)).collect();
    if has_empty_pax_xattr(tar) {
        out.insert(Class::EmptyPaxXattr);
    }
    out
}

fn has_empty_pax_xattr(tar: &[u8]) -> bool {
    let mut ar = tar::Archive::new(tar);
    let Ok(entries) = ar.entries() else {
        return false;
    };
    entries.flatten().any(|mut e| {
        let Ok(Some(exts)) = e.pax_extensions() else {
            return false;
        };
        exts.flatten()
            .any(|x| x.key_bytes().starts_with(b"SCHILY.xattr.") && x.value_bytes().is_empty())
    })
}

/// The path, type and other fields of a listing line.
fn fields(line: &str) -> Vec<&str> {
    line.split(' ').collect()
}

fn is_dir_line(line: &str) -> bool {
    fields(line).get(1) == Some(&"d")
}

/// `line` with the tokens `drop` says to drop removed.
fn without(line: &str, drop: impl Fn(&str) -> bool) -> String {
    fields(line)
        .into_iter()
        .enumerate()
        .filter(|(i, t)| *i < 2 || !drop(t))
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `line` with its mode and owner blanked.
fn blank_owner(line: &str, mode_too: bool) -> String {
    let mut t = fields(line);
    match t.get(1) {
        Some(&"l") if t.len() > 2 => t[2] = "-:-",
        Some(_) if t.len() > 3 => {
            if mode_too {
                t[2] = "----";
            }
            t[3] = "-:-";
        }
        _ => {}
    }
    t.join(" ")
}

fn normalise(class: Class, lines: &mut [String], containerd: bool) {
    for l in lines.iter_mut() {
        let dir = is_dir_line(l);
        *l = match class {
            Class::EmptyPaxXattr if containerd => {
                without(l, |t| t.starts_with("x:") && t.ends_with('='))
            }
            Class::DirTimesByName if !dir => without(l, |t| t.starts_with("t=")),
            Class::HardlinkRecordMetadata if !dir => blank_owner(
                &without(l, |t| t.starts_with("t=") || t.starts_with("x:")),
                true,
            ),
            Class::DirectoryMergeXattrs if dir => without(l, |t| t.starts_with("x:")),
            // (A parent containerd made is `0755`, as msbimage's placeholder is.)
            Class::SetgidParentGroup if dir && fields(l).get(2) == Some(&"0755") => {
                blank_owner(l, false)
            }
            _ => continue,
        };
    }
}

/// The kept classes that explain a disagreement, or `None`. `ours`/`theirs` are the two
/// listings, `None` for a refusal; `containerd_error` is containerd's refusal.
pub fn explain(
    candidates: &BTreeSet<Class>,
    ours: Option<&[String]>,
    theirs: Option<&[String]>,
    containerd_error: Option<&str>,
) -> Option<Vec<Class>> {
    if let Some(c) = candidates.iter().find(|c| c.incomparable()) {
        return Some(vec![*c]);
    }
    match (ours, theirs) {
        (Some(o), Some(t)) => explain_trees(candidates, o, t),
        (Some(_), None) => {
            let e = containerd_error.unwrap_or_default();
            let e = e.split_once(": ").map_or(e, |(_, rest)| rest);
            // Errors of containerd's last loop, which resolves each directory record's name
            // again (`fs.RootPath`: unwrapped `lstat …`, `too many links`) to set its times.
            let last_loop = e.starts_with("lstat ")
                || e == "too many links"
                || e.starts_with("failed call to UtimesNanoAt");
            if e.ends_with("not a directory") && candidates.contains(&Class::EntryBelowOwnWhiteout)
            {
                return Some(vec![Class::EntryBelowOwnWhiteout]);
            }
            (last_loop && candidates.contains(&Class::DirTimesByName))
                .then(|| vec![Class::DirTimesByName])
        }
        _ => None,
    }
}

fn explain_trees(
    candidates: &BTreeSet<Class>,
    ours: &[String],
    theirs: &[String],
) -> Option<Vec<Class>> {
    let (mut o, mut t) = (ours.to_vec(), theirs.to_vec());
    let mut used = Vec::new();
    for &class in candidates {
        let (before_o, before_t) = (o.clone(), t.clone());
        normalise(class, &mut o, false);
        normalise(class, &mut t, true);
        if o != before_o || t != before_t {
            used.push(class);
        }
        if o == t {
            return Some(used);
        }
    }
    None
}
