//! containerd's `TestBreakouts` table (`pkg/archive/tar_test.go`, containerd v2.4), every
//! case as layer tars: the case's base tree (`apply`, made with `fstest` there) as a first
//! layer when it has one, then the case's own tar, entry for entry as containerd's `tartest`
//! writes it — names as given (leading `/`, `..`, empty), directories with a `/` appended
//! (so `tc.Dir("/localetc/")` is `/localetc//`), hardlink headers with mode 0777, owner 0:0.
//!
//! The verdicts are not here: the tests that use the table state what containerd decides
//! for each case and check that msbimage decides the same (`core/tests/breakouts.rs`); the
//! differential harness runs containerd itself on the same tars (`tests/differential`).

/// One case: its name in containerd's table and its layers, bottom to top.
#[derive(Debug, Clone)]
pub struct BreakoutCase {
    /// containerd's name for it (`SymlinkAbsolute`, …).
    pub name: &'static str,
    /// Uncompressed layer tars, bottom to top; the last is the case's own tar.
    pub layers: Vec<Vec<u8>>,
}

/// The mtime of every record (containerd uses the test's start time).
pub const BREAKOUT_MTIME: u64 = 1_700_000_000;

/// A tar written record by record, as Go's `archive/tar` writes `tartest` records: USTAR
/// headers, a PAX `path`/`linkpath` record when a name does not fit in 100 bytes.
#[derive(Debug, Default, Clone)]
pub struct GoTar {
    out: Vec<u8>,
}

impl GoTar {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    fn record(
        mut self,
        kind: tar::EntryType,
        name: &str,
        link: &str,
        mode: u32,
        body: &[u8],
    ) -> Self {
        let mut pax: Vec<(&str, &[u8])> = Vec::new();
        if name.len() > 100 {
            pax.push(("path", name.as_bytes()));
        }
        if link.len() > 100 {
            pax.push(("linkpath", link.as_bytes()));
        }
        if !pax.is_empty() {
            let mut b = tar::Builder::new(Vec::new());
            b.append_pax_extensions(pax).expect("PAX header in memory");
            let mut bytes = b.into_inner().expect("tar in memory");
            bytes.truncate(bytes.len() - 1024); // no end blocks yet
            self.out.extend_from_slice(&bytes);
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(body.len() as u64);
        h.set_mtime(BREAKOUT_MTIME);
        let old = h.as_old_mut();
        let n = name.len().min(100);
        old.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        let n = link.len().min(100);
        old.linkname[..n].copy_from_slice(&link.as_bytes()[..n]);
        h.set_cksum();
        self.out.extend_from_slice(h.as_bytes());
        self.out.extend_from_slice(body);
        self.out.resize(self.out.len().div_ceil(512) * 512, 0);
        self
    }

    /// `tc.Dir(name, mode)`: a directory record named `name/`.
    pub fn dir(self, name: &str, mode: u32) -> Self {
        self.record(
            tar::EntryType::Directory,
            &format!("{name}/"),
            "",
            mode,
            b"",
        )
    }

    /// `tc.File(name, content, mode)`.
    pub fn file(self, name: &str, content: &[u8], mode: u32) -> Self {
        self.record(tar::EntryType::Regular, name, "", mode, content)
    }

    /// `tc.Symlink(target, name)`.
    pub fn symlink(self, target: &str, name: &str) -> Self {
        self.record(tar::EntryType::Symlink, name, target, 0o777, b"")
    }

    /// `tc.Link(target, name)`: a hardlink record (mode 0777, as `tartest` makes it).
    pub fn link(self, target: &str, name: &str) -> Self {
        self.record(tar::EntryType::Link, name, target, 0o777, b"")
    }

    /// The archive with its two end blocks.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&[0; 1024]);
        self.out
    }
}

fn etc_passwd(content: &[u8]) -> GoTar {
    GoTar::new()
        .dir("etc", 0o755)
        .file("etc/passwd", content, 0o644)
}

fn case(name: &'static str, base: Option<GoTar>, layer: GoTar) -> BreakoutCase {
    let mut layers: Vec<Vec<u8>> = base.into_iter().map(GoTar::finish).collect();
    layers.push(layer.finish());
    BreakoutCase { name, layers }
}

/// Every case of the table, in containerd's order. `outside` is an absolute directory
/// outside the layer (containerd's `t.TempDir()`): `HardlinkSymlinkChmod` names
/// `<outside>/perm400` and `<outside>/also-exists-outside-root`, which must not change.
pub fn breakout_cases(outside: &str) -> Vec<BreakoutCase> {
    let mut v = symlink_cases();
    v.extend(hardlink_cases());
    v.extend(override_cases());
    v.extend(whiteout_cases());
    v.extend(late_cases(outside));
    v
}

fn symlink_cases() -> Vec<BreakoutCase> {
    let un = b"unbroken";
    vec![
        case(
            "SymlinkAbsolute",
            None,
            GoTar::new()
                .dir("etc", 0o755)
                .symlink("/etc", "localetc")
                .file("/localetc/unbroken", un, 0o644),
        ),
        case(
            "SymlinkUpAndOut",
            None,
            GoTar::new()
                .dir("etc", 0o755)
                .dir("dummy", 0o755)
                .symlink("/dummy/../etc", "localetc")
                .file("/localetc/unbroken", un, 0o644),
        ),
        case(
            "SymlinkMultipleAbsolute",
            None,
            GoTar::new()
                .dir("etc", 0o755)
                .dir("dummy", 0o755)
                .symlink("/etc", "/dummy/etc")
                .symlink("/dummy/etc", "localetc")
                .file("/dummy/etc/unbroken", un, 0o644),
        ),
        case(
            "SymlinkMultipleRelative",
            None,
            GoTar::new()
                .dir("etc", 0o755)
                .dir("dummy", 0o755)
                .symlink("/etc", "/dummy/etc")
                .symlink("./dummy/etc", "localetc")
                .file("/dummy/etc/unbroken", un, 0o644),
        ),
        case(
            "SymlinkEmptyFile",
            None,
            GoTar::new()
                .dir("etc", 0o755)
                .file("etc/emptied", b"notempty", 0o644)
                .symlink("/etc", "localetc")
                .file("/localetc/emptied", b"", 0o644),
        ),
    ]
}

fn inside() -> GoTar {
    GoTar::new()
        .dir("etc", 0o770)
        .file("/etc/passwd", b"inside", 0o644)
}

fn hardlink_cases() -> Vec<BreakoutCase> {
    vec![
        case(
            "HardlinkRelative",
            None,
            inside()
                .dir("breakouts", 0o755)
                .symlink("../../etc", "breakouts/d1")
                .link("/breakouts/d1/passwd", "breakouts/mypasswd"),
        ),
        case(
            "HardlinkDownAndOut",
            None,
            inside()
                .dir("breakouts", 0o755)
                .dir("downandout", 0o755)
                .symlink("../downandout/../../etc", "breakouts/d1")
                .link("/breakouts/d1/passwd", "breakouts/mypasswd"),
        ),
        case(
            "HardlinkAbsolute",
            None,
            inside()
                .symlink("/etc", "localetc")
                .link("/localetc/passwd", "localpasswd"),
        ),
        case(
            "HardlinkRelativeLong",
            None,
            inside()
                .symlink("../../../../../../../etc", "localetc")
                .link("/localetc/passwd", "localpasswd"),
        ),
        case(
            "HardlinkRelativeUpAndOut",
            None,
            inside()
                .symlink("upandout/../../../etc", "localetc")
                .link("/localetc/passwd", "localpasswd"),
        ),
        case(
            "HardlinkDirectRelative",
            None,
            inside().link("../../../../../etc/passwd", "localpasswd"),
        ),
        case(
            "HardlinkDirectAbsolute",
            None,
            inside().link("/etc/passwd", "localpasswd"),
        ),
        case(
            "SymlinkParentDirectory",
            None,
            inside()
                .symlink("/etc/", "..")
                .link("/etc/passwd", "localpasswd"),
        ),
        case(
            "SymlinkEmptyFilename",
            None,
            inside()
                .symlink("/etc/", "")
                .link("/etc/passwd", "localpasswd"),
        ),
        case(
            "SymlinkParentRelative",
            None,
            inside()
                .symlink("/etc/", "localetc/sub/..")
                .link("/etc/passwd", "/localetc/localpasswd"),
        ),
        case(
            "SymlinkSlashEnded",
            None,
            inside()
                .dir("localetc/", 0o770)
                .link("/etc/passwd", "/localetc/localpasswd"),
        ),
    ]
}

fn override_cases() -> Vec<BreakoutCase> {
    let with_localetc_dir = || etc_passwd(b"inside").dir("localetc", 0o755);
    vec![
        case(
            "SymlinkOverrideDirectory",
            Some(with_localetc_dir()),
            GoTar::new()
                .symlink("/etc", "localetc")
                .link("/etc/passwd", "/localetc/localpasswd"),
        ),
        case(
            "SymlinkOverrideDirectoryRelative",
            Some(with_localetc_dir()),
            GoTar::new()
                .symlink("../../etc", "localetc")
                .link("/etc/passwd", "/localetc/localpasswd"),
        ),
        case(
            "DirectoryOverrideSymlink",
            Some(etc_passwd(b"inside").symlink("/etc", "localetc")),
            GoTar::new()
                .dir("/localetc/", 0o755)
                .link("/etc/passwd", "/localetc/localpasswd"),
        ),
        case(
            "DirectoryOverrideSymlinkAndHardlink",
            Some(
                etc_passwd(b"inside")
                    .symlink("etc", "localetc")
                    .link("etc/passwd", "localetc/localpasswd"),
            ),
            GoTar::new().dir("/localetc/", 0o755).file(
                "/localetc/localpasswd",
                b"different",
                0o644,
            ),
        ),
    ]
}

fn whiteout_cases() -> Vec<BreakoutCase> {
    let all_users = || etc_passwd(b"all users");
    let whitedout = || {
        all_users()
            .file("etc/whitedout", b"ahhhh whiteout", 0o644)
            .symlink("/etc", "localetc")
    };
    let dead = || all_users().symlink("/dne", "localetc");
    vec![
        case(
            "WhiteoutRootParent",
            Some(etc_passwd(b"inside")),
            GoTar::new().file(".wh...", b"", 0o644),
        ),
        case(
            "WhiteoutParent",
            Some(etc_passwd(b"inside")),
            GoTar::new().file("etc/.wh...", b"", 0o644),
        ),
        case(
            "WhiteoutRoot",
            Some(etc_passwd(b"inside")),
            GoTar::new().file(".wh..", b"", 0o644),
        ),
        case(
            "WhiteoutCurrentDirectory",
            Some(etc_passwd(b"inside")),
            GoTar::new().file("etc/.wh..", b"", 0o644),
        ),
        case(
            "WhiteoutSymlink",
            Some(all_users().symlink("/etc", "localetc")),
            GoTar::new().file(".wh.localetc", b"", 0o644),
        ),
        case(
            "WhiteoutSymlinkPath",
            Some(whitedout()),
            GoTar::new().file("localetc/.wh.whitedout", b"", 0o644),
        ),
        case(
            "WhiteoutDirectoryName",
            Some(whitedout()),
            GoTar::new().file(".wh.etc/somefile", b"non-empty", 0o644),
        ),
        case(
            "WhiteoutDeadSymlinkParent",
            Some(dead()),
            GoTar::new().file("localetc/.wh.etc", b"", 0o644),
        ),
        case(
            "WhiteoutRelativePath",
            Some(dead()),
            GoTar::new().file("dne/../.wh.etc", b"", 0o644),
        ),
    ]
}

/// `SymlinkOverridePath` and the cases containerd runs on Linux only.
fn late_cases(outside: &str) -> Vec<BreakoutCase> {
    let breakout = "foo/tmp/breakout-msbimage";
    vec![
        case(
            "SymlinkOverridePath",
            None,
            GoTar::new()
                .dir("foo", 0o755)
                .dir("foo/tmp", 0o755)
                .file(breakout, &[0, 1, 2], 0o644)
                .symlink("/", "foo")
                .file(breakout, &[3, 4, 5], 0o644)
                .dir("foo", 0o755)
                .dir("foo/tmp", 0o755)
                .file(breakout, &[6, 7, 8], 0o644),
        ),
        case(
            "HardlinkSymlinkBeforeCreateTarget",
            None,
            GoTar::new()
                .dir("etc", 0o770)
                .symlink("/etc/passwd", "localpasswd")
                .link("localpasswd", "localpasswd-dup")
                .file("/etc/passwd", b"after", 0o644),
        ),
        case(
            "HardlinkSymlinkRelative",
            None,
            inside()
                .symlink("../../../../../etc/passwd", "passwdlink")
                .link("/passwdlink", "localpasswd"),
        ),
        case(
            "HardlinkSymlinkAbsolute",
            None,
            inside()
                .symlink("/etc/passwd", "passwdlink")
                .link("/passwdlink", "localpasswd"),
        ),
        case(
            "HardlinkSymlinkChmod",
            None,
            GoTar::new()
                .symlink(
                    &format!("{outside}/perm400"),
                    &format!("{outside}/also-exists-outside-root"),
                )
                .link(
                    &format!("{outside}/also-exists-outside-root"),
                    "sketchylink",
                ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_every_case_once_with_names_as_containerd_writes_them() {
        let cases = breakout_cases("/tmp/outside");
        assert_eq!(cases.len(), 34);
        let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 34);
        let last = cases
            .iter()
            .find(|c| c.name == "DirectoryOverrideSymlink")
            .unwrap();
        let mut ar = tar::Archive::new(&last.layers[1][..]);
        let raw: Vec<Vec<u8>> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path_bytes().into_owned())
            .collect();
        assert_eq!(raw, [&b"/localetc//"[..], b"/localetc/localpasswd"]);
    }
}
