//! Where an entry lands inside the layer. The directories of an entry's (cleaned) name, and a
//! hardlink's target but its last component, are resolved through the symlinks this layer
//! has written so far, scoped to the layer root as containerd's `fs.RootPath` scopes them to
//! its root: an absolute target starts again at the layer root, `..` never climbs above it, a
//! relative target is joined to its symlink's directory lexically and the result walked
//! again, and at most 255 symlinks are followed for one path. Lower layers' symlinks are not
//! seen (each layer is extracted on its own, like containerd's overlayfs snapshotter does).
//!
//! Symlinks are regular files in our tree (see `cache/LAYOUT.md`), so the kernel never
//! follows one: this module owns the table of every symlink the layer holds, kept by the
//! extractor as entries are written, replaced and removed, and resolves paths from it alone.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::tar_meta::clean_components;

/// Most symlinks followed while resolving one path (containerd's and the kernel's bound).
const MAX_LINKS: usize = 255;

/// Most components walked while resolving one path: 255 links of long targets could
/// otherwise make one entry cost millions of steps.
const MAX_STEPS: usize = 16_384;

/// Why a path cannot be resolved.
#[derive(Debug)]
pub(super) enum Unresolvable {
    /// More than [`MAX_LINKS`] symlinks (a loop, or a hostile chain), or more than
    /// [`MAX_STEPS`] components walked.
    TooManyLinks,
    /// The walk went through an existing non-directory (`file/x/..`).
    NotADirectory,
}

/// The symlinks of the layer being extracted, by path, with their targets.
#[derive(Debug, Default)]
pub(super) struct Symlinks {
    /// By path: a directory's descendants follow it (paths order component by component),
    /// so a removed directory's symlinks are one range.
    targets: BTreeMap<PathBuf, Vec<u8>>,
    /// Bumped on every change, so that `last` knows when it is stale.
    generation: u64,
    /// The last directory resolved (a tar lists a directory's entries together): the path as
    /// asked, the generation it was resolved at, and where it led.
    last: Option<(PathBuf, u64, PathBuf)>,
}

impl Symlinks {
    /// `path` is now a symlink to `target`.
    pub(super) fn insert(&mut self, path: &Path, target: Vec<u8>) {
        self.targets.insert(path.to_owned(), target);
        self.generation += 1;
    }

    /// `path` (no longer) holds a symlink.
    pub(super) fn remove(&mut self, path: &Path) {
        if self.targets.remove(path).is_some() {
            self.generation += 1;
        }
    }

    /// The directory `dir` was removed with everything under it.
    pub(super) fn remove_tree(&mut self, dir: &Path) {
        let gone: Vec<PathBuf> = self
            .targets
            .range(dir.to_path_buf()..)
            .map(|(p, _)| p)
            .take_while(|p| p.starts_with(dir))
            .cloned()
            .collect();
        for p in &gone {
            self.targets.remove(p);
        }
        if !gone.is_empty() {
            self.generation += 1;
        }
    }

    /// The target of the symlink at `path`, if `path` is one.
    pub(super) fn target(&self, path: &Path) -> Option<&[u8]> {
        self.targets.get(path).map(Vec::as_slice)
    }

    /// Resolve every component of the directory `dir` (a cleaned relative path; empty for
    /// the root).
    pub(super) fn resolve_dir(&mut self, dir: &Path) -> Result<PathBuf, Unresolvable> {
        if self.targets.is_empty() {
            return Ok(dir.to_owned());
        }
        if let Some((asked, generation, resolved)) = &self.last
            && *generation == self.generation
            && asked == dir
        {
            return Ok(resolved.clone());
        }
        let comps = dir.components().map(|c| c.as_os_str().as_bytes());
        // (A cleaned name has no `..`: a walk through a file fails when it is written.)
        let resolved = self.resolve(comps, &|_| false)?;
        self.last = Some((dir.to_owned(), self.generation, resolved.clone()));
        Ok(resolved)
    }

    /// Resolve components as written (`""`, `.` and `..` included), following every
    /// symlink met; `is_file` says whether a path is an existing non-directory, which the
    /// walk may not go through (as `fs.RootPath`'s `lstat` fails there).
    pub(super) fn resolve<'a>(
        &self,
        comps: impl IntoIterator<Item = &'a [u8]>,
        is_file: &dyn Fn(&Path) -> bool,
    ) -> Result<PathBuf, Unresolvable> {
        let mut queue: VecDeque<Vec<u8>> = comps.into_iter().map(<[u8]>::to_vec).collect();
        let mut cur = PathBuf::new();
        let (mut links, mut steps) = (0, 0);
        while let Some(c) = queue.pop_front() {
            steps += 1;
            if steps > MAX_STEPS {
                return Err(Unresolvable::TooManyLinks);
            }
            match c.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    cur.pop();
                    continue;
                }
                _ => {
                    if !cur.as_os_str().is_empty() && is_file(&cur) {
                        return Err(Unresolvable::NotADirectory);
                    }
                    cur.push(OsStr::from_bytes(&c));
                }
            }
            let Some(target) = self.targets.get(&cur) else {
                continue;
            };
            links += 1;
            if links > MAX_LINKS {
                return Err(Unresolvable::TooManyLinks);
            }
            cur.pop();
            // The target joined to the link's directory (or to the root), cleaned, then
            // walked again from the root ahead of what is left.
            let base: Vec<&[u8]> = if target.starts_with(b"/") {
                Vec::new()
            } else {
                cur.components().map(|c| c.as_os_str().as_bytes()).collect()
            };
            let joined = clean_components(base.into_iter().chain(target.split(|b| *b == b'/')));
            for c in joined.into_iter().rev() {
                queue.push_front(c.to_vec());
            }
            cur.clear();
        }
        Ok(cur)
    }
}

/// `dir` (when `with_dir`) and every path below it among `keys`, which are in order from
/// `dir` on: paths order component by component, so they are one range, and finding them
/// costs what they are (never a walk of the whole table, whatever a hostile tar removes).
fn below<'a>(keys: impl Iterator<Item = &'a PathBuf>, dir: &Path, with_dir: bool) -> Vec<PathBuf> {
    keys.take_while(|p| p.starts_with(dir))
        .filter(|p| with_dir || p.as_path() != dir)
        .cloned()
        .collect()
}

/// Remove `dir` (when `with_dir`) and every path below it from `set`, by range; returns how
/// many were removed.
pub(super) fn remove_below(set: &mut BTreeSet<PathBuf>, dir: &Path, with_dir: bool) -> usize {
    let gone = below(set.range(dir.to_path_buf()..), dir, with_dir);
    for p in &gone {
        set.remove(p);
    }
    gone.len()
}

/// Remove `dir` and every path below it from `map`, by range.
pub(super) fn remove_tree_of<V>(map: &mut BTreeMap<PathBuf, V>, dir: &Path) {
    let gone = below(map.range(dir.to_path_buf()..).map(|(p, _)| p), dir, true);
    for p in &gone {
        map.remove(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(links: &[(&str, &str)]) -> Symlinks {
        let mut s = Symlinks::default();
        for (p, t) in links {
            s.insert(Path::new(p), t.as_bytes().to_vec());
        }
        s
    }

    fn resolve(s: &Symlinks, p: &str) -> Option<PathBuf> {
        s.resolve(p.as_bytes().split(|b| *b == b'/'), &|_| false)
            .ok()
    }

    #[test]
    fn symlinks_resolve_inside_the_layer_root() {
        let s = table(&[
            ("localetc", "/etc"),
            ("up", "/dummy/../etc"),
            ("dummy/etc", "/etc"),
            ("rel", "./dummy/etc"),
            ("breakouts/d1", "../../etc"),
            ("long", "../../../../../../../etc"),
            ("root", "/"),
        ]);
        for p in [
            "localetc",
            "up",
            "dummy/etc",
            "rel",
            "breakouts/d1",
            "long",
            "root/etc",
            "root/root/localetc",
            "x/../localetc",
        ] {
            assert_eq!(resolve(&s, p), Some(PathBuf::from("etc")), "{p}");
        }
        assert_eq!(resolve(&s, "localetc/a/.."), Some(PathBuf::from("etc")));
        assert_eq!(resolve(&s, "../../.."), Some(PathBuf::new()));
        assert_eq!(resolve(&s, "nolink/x"), Some(PathBuf::from("nolink/x")));
    }

    #[test]
    fn a_walk_through_a_file_is_refused() {
        let s = table(&[("l", "file")]);
        let is_file = |p: &Path| p == Path::new("file");
        for p in ["file/a/..", "l/a/.."] {
            let r = s.resolve(p.as_bytes().split(|b| *b == b'/'), &is_file);
            assert!(matches!(r, Err(Unresolvable::NotADirectory)), "{p}");
        }
        let r = s.resolve(b"dir/a/..".split(|b| *b == b'/'), &is_file);
        assert_eq!(r.unwrap(), Path::new("dir"));
    }

    #[test]
    fn symlink_loops_stop_after_255_links() {
        let s = table(&[("a", "b"), ("b", "a")]);
        assert!(resolve(&s, "a/x").is_none());
        let mut chain: Vec<(String, String)> = (0..255)
            .map(|i| (format!("l{i}"), format!("l{}", i + 1)))
            .collect();
        chain.push(("l255".into(), "end".into()));
        let refs: Vec<(&str, &str)> = chain.iter().map(|(a, b)| (&**a, &**b)).collect();
        assert!(resolve(&table(&refs), "l0").is_none(), "256 links");
        assert_eq!(
            resolve(&table(&refs[1..]), "l1"),
            Some(PathBuf::from("end"))
        );
    }

    #[test]
    fn the_last_resolution_is_forgotten_when_the_table_changes() {
        let mut s = table(&[("a", "b")]);
        assert_eq!(s.resolve_dir(Path::new("a/c")).unwrap(), Path::new("b/c"));
        s.remove(Path::new("a"));
        s.insert(Path::new("other"), b"x".to_vec());
        assert_eq!(s.resolve_dir(Path::new("a/c")).unwrap(), Path::new("a/c"));
        s.insert(Path::new("d/l"), b"/t".to_vec());
        s.insert(Path::new("d-e"), b"/t".to_vec());
        s.remove_tree(Path::new("d"));
        assert!(s.target(Path::new("d/l")).is_none());
        assert_eq!(s.target(Path::new("other")), Some(&b"x"[..]));
        assert!(s.target(Path::new("d-e")).is_some(), "not under d");
        let mut set: BTreeSet<PathBuf> = ["d", "d/a", "d/a/b", "d-e", "c"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(remove_below(&mut set, Path::new("d"), false), 2);
        let left: Vec<&str> = set.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(left, ["c", "d", "d-e"]);
    }
}
