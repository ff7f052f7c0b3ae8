//! Random tar archives with hostile names, shared by the extractor's fuzz target
//! (`core/fuzz/fuzz_targets/extract.rs` includes this file by path) and the differential
//! harness against containerd (`tests/differential`). Depends on nothing but std.
//!
//! An archive is a few entries of every type (files, directories, symlinks, hardlinks,
//! devices, FIFOs) whose names are built from hostile pieces: `..`, `.`, empty components,
//! leading `/`, `./` and `../`, whiteout and opaque markers (`.wh.a`, `.wh..wh..opq`, `.wh..`),
//! `.wh.`-prefixed directories, names over 100 and 255 bytes, non-UTF-8 bytes, and names and
//! symlink/hardlink targets reused from earlier entries (so paths repeat, links point at
//! real entries and writes go through symlinks). Long names go as GNU long name/link
//! entries, PAX records or ustar prefixes; some entries carry PAX records (sub-second
//! mtimes, big ids, xattrs). With [`Profile::stream_faults`] the stream itself is hostile
//! too: lying sizes, bad checksums, GNU sparse maps, unknown types, truncation, garbage.

/// A source of choices: a seeded generator, or the fuzzer's input.
pub trait Entropy {
    /// A number in `0..n` (`n` ≥ 1).
    fn below(&mut self, n: u64) -> u64;

    /// True with probability `num / den`.
    fn ratio(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// One of `items` (not empty).
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// SplitMix64: a small, fast, seedable generator (one seed, one archive).
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl Entropy for SplitMix64 {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// What kind of archives to make.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// Make the stream hostile too (see the module comment). Off: every archive is a
    /// well-formed tar whose entries are hostile only in what they say.
    pub stream_faults: bool,
    /// An absolute directory outside the layer that names and targets aim at.
    pub victim: Option<Vec<u8>>,
    /// Most entries in one archive.
    pub max_entries: u64,
}

// ---------------------------------------------------------------- tar writing

fn octal(field: &mut [u8], v: u64) {
    let width = field.len() - 1;
    let s = format!("{v:0width$o}");
    if s.len() > width {
        // GNU base-256 for values the octal field cannot hold.
        field.fill(0);
        field[0] = 0x80;
        let bytes = v.to_be_bytes();
        let n = bytes.len().min(field.len() - 1);
        let len = field.len();
        field[len - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    } else {
        field[..width].copy_from_slice(s.as_bytes());
        field[width] = 0;
    }
}

/// The header format of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Magic {
    /// GNU (`ustar  `).
    Gnu,
    /// POSIX ustar (`ustar\0` `00`), with a name prefix field.
    Ustar,
    /// Pre-POSIX v7: no magic.
    V7,
}

/// One header record, before it is encoded.
#[derive(Debug, Clone)]
pub struct Hdr<'a> {
    /// Name field (at most 100 bytes are stored).
    pub name: &'a [u8],
    /// ustar prefix field (at most 155 bytes).
    pub prefix: &'a [u8],
    /// Link name field.
    pub link: &'a [u8],
    /// Type flag.
    pub kind: u8,
    /// Size field.
    pub size: u64,
    /// Mode field.
    pub mode: u64,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Modification time.
    pub mtime: u64,
    /// Device major and minor.
    pub dev: (u64, u64),
    /// Header format.
    pub magic: Magic,
    /// GNU sparse: real size and map.
    pub sparse: Option<(u64, Vec<(u64, u64)>)>,
    /// Store a wrong checksum.
    pub bad_checksum: bool,
}

impl Hdr<'_> {
    fn plain(kind: u8, size: u64, magic: Magic) -> Hdr<'static> {
        Hdr {
            name: b"",
            prefix: b"",
            link: b"",
            kind,
            size,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            dev: (0, 0),
            magic,
            sparse: None,
            bad_checksum: false,
        }
    }
}

/// The 512-byte header block of `h`.
pub fn header(h: &Hdr<'_>) -> [u8; 512] {
    let mut b = [0u8; 512];
    let n = h.name.len().min(100);
    b[..n].copy_from_slice(&h.name[..n]);
    octal(&mut b[100..108], h.mode);
    octal(&mut b[108..116], h.uid);
    octal(&mut b[116..124], h.gid);
    octal(&mut b[124..136], h.size);
    octal(&mut b[136..148], h.mtime);
    b[156] = h.kind;
    let n = h.link.len().min(100);
    b[157..157 + n].copy_from_slice(&h.link[..n]);
    match h.magic {
        Magic::Gnu => {
            b[257..263].copy_from_slice(b"ustar ");
            b[263..265].copy_from_slice(b" \0");
        }
        Magic::Ustar => {
            b[257..263].copy_from_slice(b"ustar\0");
            b[263..265].copy_from_slice(b"00");
            let n = h.prefix.len().min(155);
            b[345..345 + n].copy_from_slice(&h.prefix[..n]);
        }
        Magic::V7 => {}
    }
    if h.magic != Magic::V7 {
        octal(&mut b[329..337], h.dev.0);
        octal(&mut b[337..345], h.dev.1);
    }
    if let (Magic::Gnu, Some((real, map))) = (h.magic, &h.sparse) {
        // Up to 4 map entries in the header (offset 386, 24 bytes each), real size at 483.
        for (i, (off, len)) in map.iter().take(4).enumerate() {
            let at = 386 + i * 24;
            octal(&mut b[at..at + 12], *off);
            octal(&mut b[at + 12..at + 24], *len);
        }
        b[482] = u8::from(map.len() > 4);
        octal(&mut b[483..495], *real);
    }
    b[148..156].fill(b' ');
    let sum: u64 = b.iter().map(|x| u64::from(*x)).sum();
    let s = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(s.as_bytes());
    if h.bad_checksum {
        b[148] = b'7';
    }
    b
}

fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// One PAX record, `"<len> key=value\n"`.
pub fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len.to_string().len() + body != len {
        len = len.to_string().len() + body;
    }
    let mut r = len.to_string().into_bytes();
    r.push(b' ');
    r.extend_from_slice(key);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// An extension record (`x` PAX, `g` global PAX, `L`/`K` GNU long name/link) with `body`.
pub fn extension(out: &mut Vec<u8>, kind: u8, body: &[u8], magic: Magic) {
    let name: &[u8] = match kind {
        b'x' => b"PaxHeaders/x",
        b'g' => b"pax_global_header",
        _ => b"././@LongLink",
    };
    let h = Hdr {
        name,
        ..Hdr::plain(kind, body.len() as u64, magic)
    };
    out.extend_from_slice(&header(&h));
    out.extend_from_slice(body);
    pad(out);
}

// ---------------------------------------------------------------- names

/// Builds names and targets, remembering what it made so later entries reuse them.
struct Names<'p> {
    profile: &'p Profile,
    /// Names made so far, with whether their entry was a directory.
    made: Vec<(Vec<u8>, bool)>,
    /// The header metadata (mode, uid, gid, mtime) of the last entry of each name.
    meta: std::collections::HashMap<Vec<u8>, [u64; 4]>,
}

impl Names<'_> {
    fn piece(&self, e: &mut impl Entropy) -> Vec<u8> {
        // Pieces every name may hold, then rarer ones that make most archives fail (a
        // component over NAME_MAX, a whiteout of nothing, `.` or `..`): rare in
        // well-formed archives, so that most of those are applied and compared.
        let rare = if self.profile.stream_faults { 4 } else { 150 };
        match e.below(15 + rare) {
            0 | 1 => b"a".to_vec(),
            2 => b"b".to_vec(),
            3 => b"c".to_vec(),
            4 => b"..".to_vec(),
            5 => b".".to_vec(),
            6 => Vec::new(),
            7 => b".wh.a".to_vec(),
            8 => b".wh.b".to_vec(),
            9 => b".wh..wh..opq".to_vec(),
            10 => vec![b'x'; 120],
            11 => b"\xff\xfe".to_vec(),
            12 => "\u{e9}t\u{e9}".as_bytes().to_vec(),
            13 => b"link".to_vec(),
            14 => b"victim".to_vec(),
            15 => e
                .pick::<&[u8]>(&[b".wh.", b".wh..", b".wh...", b".wh..wh.x"])
                .to_vec(),
            16 => vec![b'y'; 256],
            17 => {
                let len = 1 + e.below(6) as usize;
                (0..len)
                    .map(|_| match e.below(256) as u8 {
                        b'/' => b'_',
                        b => b,
                    })
                    .collect()
            }
            _ => e.pick::<&[u8]>(&[b"a", b"b", b"c", b"d"]).to_vec(),
        }
    }

    /// A fresh path of 1–4 pieces, maybe with a leading `/`, `./` or `../` and a trailing
    /// `/`.
    fn fresh(&self, e: &mut impl Entropy) -> Vec<u8> {
        let mut p = Vec::new();
        match e.below(7) {
            0 => p.push(b'/'),
            1 => p.extend_from_slice(b"./"),
            2 => p.extend_from_slice(b"../"),
            3 => {
                if let Some(v) = &self.profile.victim {
                    p.extend_from_slice(v);
                    p.push(b'/');
                }
            }
            _ => {}
        }
        let n = 1 + e.below(4);
        for i in 0..n {
            if i > 0 {
                p.push(b'/');
            }
            // Directories mostly get names of their own, so that most archives are applied
            // and compared rather than refused for a file used as a directory.
            if i + 1 < n && e.ratio(1, 2) {
                p.extend_from_slice(e.pick::<&[u8]>(&[b"dir", b"sub"]));
            } else {
                p.extend_from_slice(&self.piece(e));
            }
        }
        if e.ratio(1, 8) {
            p.push(b'/');
        }
        if self.profile.stream_faults && e.ratio(1, 40) {
            p.push(0);
            p.extend_from_slice(b"tail");
        }
        p
    }

    /// A name made before, preferring directories (`dir`) or non-directories (`strict`:
    /// only those).
    fn earlier(&self, e: &mut impl Entropy, dir: bool, strict: bool) -> Option<Vec<u8>> {
        let fitting: Vec<&Vec<u8>> = self
            .made
            .iter()
            .filter(|(_, d)| *d == dir)
            .map(|(p, _)| p)
            .collect();
        if !fitting.is_empty() && (strict || e.ratio(4, 5)) {
            return Some(fitting[e.below(fitting.len() as u64) as usize].clone());
        }
        if strict {
            return None;
        }
        let any = self
            .made
            .get(e.below(self.made.len().max(1) as u64) as usize)?;
        Some(any.0.clone())
    }

    /// A path for an entry (`dir`: a directory): often one made before (repeated), or one
    /// under a directory made before.
    fn path(&mut self, e: &mut impl Entropy, dir: bool) -> Vec<u8> {
        let p = match e.below(3) {
            0 => self.earlier(e, dir, false),
            1 => self
                .earlier(e, true, !self.profile.stream_faults)
                .map(|mut p| {
                    if !p.ends_with(b"/") {
                        p.push(b'/');
                    }
                    p.extend_from_slice(&self.piece(e));
                    p
                }),
            _ => None,
        };
        let p = p.unwrap_or_else(|| self.fresh(e));
        self.made.push((p.clone(), dir));
        p
    }

    /// A symlink or hardlink target (`hard`: for a hardlink, so mostly an earlier
    /// non-directory): a path of this archive (as written, or made absolute or relative
    /// with `..`), or a fresh one.
    fn target(&mut self, e: &mut impl Entropy, hard: bool) -> Vec<u8> {
        let base = match self.earlier(e, !hard, false) {
            Some(b) if hard && e.ratio(2, 3) => return b,
            Some(b) if !e.ratio(1, 5) => b,
            _ if hard && e.ratio(2, 3) => return self.fresh(e),
            _ => {
                return match e.below(5) {
                    0 => b"/".to_vec(),
                    1 => b"..".to_vec(),
                    2 => b".".to_vec(),
                    _ => self.fresh(e),
                };
            }
        };
        let stripped: &[u8] = {
            let mut b = &base[..];
            while let Some(rest) = b.strip_prefix(b"/") {
                b = rest;
            }
            b
        };
        match e.below(4) {
            0 => [&b"/"[..], stripped].concat(),
            1 => {
                let ups = 1 + e.below(3) as usize;
                [b"../".repeat(ups).as_slice(), stripped].concat()
            }
            _ => base,
        }
    }
}

// ---------------------------------------------------------------- entries

/// How a name longer than its header field is carried.
#[derive(Clone, Copy, PartialEq)]
enum LongForm {
    Gnu,
    Pax,
    Prefix,
}

fn entry_kind(e: &mut impl Entropy, faults: bool) -> u8 {
    match e.below(16) {
        0..=4 => b'0',
        5 | 6 => b'5',
        7 | 8 => b'2',
        9 | 10 => b'1',
        11 => b'3',
        12 => b'4',
        13 => b'6',
        14 if faults => b'S',
        14 => b'0',
        _ if faults => *e.pick(&[0u8, b'7', b'g', b'x', b'L', b'K', b'V', b'D', b'Z']),
        _ => *e.pick(&[0u8, b'7', b'0']),
    }
}

fn pax_records(e: &mut impl Entropy, faults: bool, size: u64) -> Vec<u8> {
    let mut pax = Vec::new();
    for _ in 0..1 + e.below(3) {
        let rec = match e.below(if faults { 10 } else { 6 }) {
            0 => {
                let t: &[u8] = if faults {
                    e.pick::<&[u8]>(&[
                        &b"1700000000.123456789"[..],
                        b"-0.5",
                        b"-9223372036854775808.5",
                        b"99999999999999999999",
                        b"1.00000000000001",
                        b"-",
                        b".",
                    ])
                } else {
                    e.pick::<&[u8]>(&[b"1700000000.123456789", b"1700000001.5", b"12"])
                };
                pax_record(b"mtime", t)
            }
            1 => pax_record(b"uid", b"3000000000"),
            2 => pax_record(b"gid", b"70000"),
            3 => pax_record(b"SCHILY.xattr.user.foo", b"bar"),
            4 => pax_record(b"SCHILY.xattr.user.empty", b""),
            5 => pax_record(b"SCHILY.xattr.user.b", b"\x00\x01\xff"),
            6 => pax_record(b"size", size.to_string().as_bytes()),
            7 => pax_record(b"size", b"1048577"),
            8 => pax_record(b"GNU.sparse.major", b"1"),
            _ => pax_record(b"LIBARCHIVE.xattr.user.b64", b"aGVsbG8="),
        };
        pax.extend(rec);
    }
    pax
}

fn sparse_map(e: &mut impl Entropy) -> (u64, Vec<(u64, u64)>) {
    let mut map = Vec::new();
    let mut off = 0u64;
    for _ in 0..e.below(7) {
        off += e.below(2001);
        let len = 512 * e.below(3);
        map.push((off, len));
        off += len;
    }
    (off + e.below(101), map)
}

/// Append one entry (and the extension records it needs).
fn entry(e: &mut impl Entropy, names: &mut Names<'_>, out: &mut Vec<u8>) {
    let faults = names.profile.stream_faults;
    let kind = entry_kind(e, faults);
    let magic = *e.pick(&[Magic::Gnu, Magic::Gnu, Magic::Ustar, Magic::V7]);
    let link = match kind {
        b'1' => names.target(e, true),
        b'2' => names.target(e, false),
        _ => Vec::new(),
    };
    let name = names.path(e, kind == b'5');
    let long = *e.pick(&[LongForm::Gnu, LongForm::Pax, LongForm::Prefix]);
    // Only regular files have content (a pre-POSIX `dir/` is a directory; Go's reader skips
    // no content for those, the tar crate skips `size` bytes: a stream fault).
    let regular = matches!(kind, b'0' | 0 | b'7') && !(kind == 0 && name.ends_with(b"/"));
    let content: Vec<u8> = if regular || faults {
        (0..e.below(701)).map(|i| (i % 251) as u8).collect()
    } else {
        Vec::new()
    };
    let mut size = content.len() as u64;
    if faults && e.ratio(1, 12) {
        size = *e.pick(&[0u64, 1, 511, 513, 1 << 20, 1 << 33, u64::MAX >> 4]);
    }
    let mut pax: Vec<u8> = Vec::new();
    let mut name_field: &[u8] = &name;
    let mut prefix: &[u8] = b"";
    if name.len() > 100 {
        match (long, magic) {
            (LongForm::Gnu, _) => extension(out, b'L', &[&name[..], b"\0"].concat(), Magic::Gnu),
            (LongForm::Prefix, Magic::Ustar) if name.len() <= 255 => {
                let split = name.len().saturating_sub(100);
                prefix = &name[..split];
                name_field = &name[split..];
            }
            _ => pax.extend(pax_record(b"path", &name)),
        }
    }
    if link.len() > 100 {
        match long {
            LongForm::Gnu => extension(out, b'K', &[&link[..], b"\0"].concat(), Magic::Gnu),
            _ => pax.extend(pax_record(b"linkpath", &link)),
        }
    }
    // A hardlink record mostly repeats its target's metadata (containerd applies the
    // record's to the shared inode, GNU tar and umoci do not: the same either way then).
    let copied = (kind == b'1' && !faults && e.ratio(3, 4))
        .then(|| names.meta.get(&link).copied())
        .flatten();
    if e.ratio(1, 4) && copied.is_none() {
        pax.extend(pax_records(e, faults, size));
    }
    if faults && e.ratio(1, 10) {
        pax.extend(pax_record(b"path", &names.fresh(e)));
    }
    if !pax.is_empty() {
        extension(out, b'x', &pax, Magic::Ustar);
    }
    let sparse = (kind == b'S').then(|| sparse_map(e));
    if let Some((_, map)) = &sparse {
        size = map.iter().map(|(_, l)| l).sum();
    }
    let [mode, uid, gid, mtime] = copied.unwrap_or_else(|| {
        [
            e.below(0o10000),
            *e.pick(&[0u64, 0, 1000, 0o7777777, 3_000_000_000]),
            *e.pick(&[0u64, 0, 50]),
            1_700_000_000 + e.below(1000),
        ]
    });
    names.meta.insert(name.clone(), [mode, uid, gid, mtime]);
    let h = Hdr {
        name: name_field,
        prefix,
        link: &link,
        mode,
        uid,
        gid,
        mtime,
        dev: (e.below(256), e.below(65536)),
        sparse: sparse.clone(),
        bad_checksum: faults && e.ratio(1, 60),
        ..Hdr::plain(kind, size, magic)
    };
    out.extend_from_slice(&header(&h));
    if let Some((_, map)) = &sparse
        && map.len() > 4
    {
        // One extension block with the rest of the map.
        let mut ext = [0u8; 512];
        for (i, (off, len)) in map.iter().skip(4).take(21).enumerate() {
            let at = i * 24;
            octal(&mut ext[at..at + 12], *off);
            octal(&mut ext[at + 12..at + 24], *len);
        }
        out.extend_from_slice(&ext);
    }
    let body_len = if kind == b'S' {
        size as usize
    } else {
        content.len()
    };
    out.extend((0..body_len).map(|i| (i % 251) as u8));
    pad(out);
}

/// One archive.
pub fn generate(e: &mut impl Entropy, profile: &Profile) -> Vec<u8> {
    let mut names = Names {
        profile,
        made: Vec::new(),
        meta: std::collections::HashMap::new(),
    };
    let mut out = Vec::new();
    for _ in 0..1 + e.below(profile.max_entries.max(1)) {
        entry(e, &mut names, &mut out);
    }
    out.extend_from_slice(&[0u8; 1024]);
    if profile.stream_faults {
        match e.below(10) {
            0 => {
                let keep = e.below(out.len() as u64 + 1) as usize;
                out.truncate(keep);
            }
            1 => out.extend_from_slice(b"trailing garbage after the end of the archive"),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_profile_archives_parse_whole() {
        let profile = Profile {
            max_entries: 12,
            ..Profile::default()
        };
        for seed in 0..200 {
            let tar = generate(&mut SplitMix64(seed), &profile);
            let mut ar = tar::Archive::new(&tar[..]);
            for entry in ar.entries().unwrap() {
                let mut entry = entry.unwrap_or_else(|err| panic!("seed {seed}: {err}"));
                std::io::copy(&mut entry, &mut std::io::sink()).unwrap();
            }
        }
    }

    #[test]
    fn a_seed_always_makes_the_same_archive() {
        let p = Profile {
            max_entries: 8,
            stream_faults: true,
            victim: Some(b"/tmp/victim".to_vec()),
        };
        assert_eq!(
            generate(&mut SplitMix64(7), &p),
            generate(&mut SplitMix64(7), &p)
        );
    }
}
