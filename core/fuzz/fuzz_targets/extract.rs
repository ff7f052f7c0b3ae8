//! Fuzz target: the layer extractor (`microsandbox_image::layer::fuzz_extract`: tar guard,
//! tar reader, extractor and index builder, with small limits) on hostile tars.
//!
//! Inputs starting with 0xff are used as the tar itself (so libFuzzer's byte mutations reach
//! the header parser); every other input drives a tar-aware generator: a few entries of every
//! type with names built from hostile pieces (`..`, `.`, empty components, absolute paths
//! into the victim directory, names over 100 and 255 bytes, invalid UTF-8), written with
//! GNU, ustar or v7 headers, GNU long name/link entries, ustar prefixes or PAX records
//! (including lying `size` records, big ids, sub-second mtimes and xattrs), bodies that
//! match their size or lie about it, then optionally truncated or followed by garbage.
//!
//! Each run extracts into `<run>/layer` next to a sentinel `<run>/victim/keep`, and checks:
//! nothing but `layer` and `victim` exists in `<run>`, the victim is untouched, the extracted
//! tree holds only regular files and directories (no symlink, device or FIFO), and no error
//! is an internal one (a panic or the guard changing what the tar reader sees).

#![no_main]

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use microsandbox_image::LayerError;
use microsandbox_image::layer::fuzz_extract;

const VICTIM_CONTENT: &[u8] = b"original victim content\n";

fn base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let b = std::env::temp_dir().join(format!("msb-extract-fuzz-{}", std::process::id()));
        let _ = fs::remove_dir_all(&b);
        fs::create_dir_all(&b).expect("fuzz base dir");
        b
    })
}

fn run_dir() -> PathBuf {
    base().join("run")
}

fn victim_dir() -> PathBuf {
    run_dir().join("victim")
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

#[derive(Clone, Copy)]
enum Magic {
    Gnu,
    Ustar,
    V7,
}

struct Hdr<'a> {
    name: &'a [u8],
    prefix: &'a [u8],
    link: &'a [u8],
    kind: u8,
    size: u64,
    mode: u64,
    uid: u64,
    gid: u64,
    mtime: u64,
    dev: (u64, u64),
    magic: Magic,
    sparse: Option<(u64, Vec<(u64, u64)>)>,
    bad_checksum: bool,
}

fn header(h: &Hdr<'_>) -> [u8; 512] {
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
    if !matches!(h.magic, Magic::V7) {
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
    while !out.len().is_multiple_of(512) {
        out.push(0);
    }
}

fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
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

fn extension(out: &mut Vec<u8>, kind: u8, body: &[u8], magic: Magic) {
    let h = Hdr {
        name: match kind {
            b'x' => b"PaxHeaders/x",
            b'g' => b"pax_global_header",
            _ => b"././@LongLink",
        },
        prefix: b"",
        link: b"",
        kind,
        size: body.len() as u64,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
        dev: (0, 0),
        magic,
        sparse: None,
        bad_checksum: false,
    };
    out.extend_from_slice(&header(&h));
    out.extend_from_slice(body);
    pad(out);
}

// ---------------------------------------------------------------- generation

fn piece(u: &mut Unstructured<'_>) -> ArbResult<Vec<u8>> {
    Ok(match u.int_in_range(0..=15u8)? {
        0 => b"a".to_vec(),
        1 => b"b".to_vec(),
        2 => b"..".to_vec(),
        3 => b".".to_vec(),
        4 => Vec::new(),
        5 => b"link".to_vec(),
        6 => b"dir".to_vec(),
        7 => b".wh.a".to_vec(),
        8 => b".wh..wh..opq".to_vec(),
        9 => vec![b'x'; 120],
        10 => vec![b'y'; 256],
        11 => b"\xff\xfe".to_vec(),
        12 => "\u{e9}t\u{e9}".as_bytes().to_vec(),
        13 => victim_dir().as_os_str().as_bytes().to_vec(),
        14 => b"victim".to_vec(),
        _ => {
            let len = u.int_in_range(1..=6usize)?;
            let raw = u.bytes(len)?;
            raw.iter()
                .map(|b| if *b == b'/' { b'_' } else { *b })
                .collect()
        }
    })
}

fn path(u: &mut Unstructured<'_>) -> ArbResult<Vec<u8>> {
    let mut p = Vec::new();
    match u.int_in_range(0..=5u8)? {
        0 => p.push(b'/'),
        1 => p.extend_from_slice(b"./"),
        2 => p.extend_from_slice(b"../"),
        _ => {}
    }
    let n = u.int_in_range(1..=4usize)?;
    for i in 0..n {
        if i > 0 {
            p.push(b'/');
        }
        p.extend_from_slice(&piece(u)?);
    }
    if u.ratio(1, 6)? {
        p.push(b'/');
    }
    if u.ratio(1, 40)? {
        p.push(0);
        p.extend_from_slice(b"tail");
    }
    Ok(p)
}

/// How a name longer than its header field is carried.
#[derive(Clone, Copy, PartialEq)]
enum LongForm {
    Gnu,
    Pax,
    Prefix,
}

fn entry(u: &mut Unstructured<'_>, out: &mut Vec<u8>) -> ArbResult<()> {
    let kind = match u.int_in_range(0..=14u8)? {
        0..=3 => b'0',
        4 | 5 => b'5',
        6 | 7 => b'2',
        8 | 9 => b'1',
        10 => b'3',
        11 => b'4',
        12 => b'6',
        13 => b'S',
        _ => *u.choose(&[0u8, b'7', b'g', b'x', b'L', b'K', b'V', b'D', b'Z'])?,
    };
    let magic = *u.choose(&[Magic::Gnu, Magic::Gnu, Magic::Ustar, Magic::V7])?;
    let name = path(u)?;
    let link = if matches!(kind, b'1' | b'2') {
        path(u)?
    } else {
        Vec::new()
    };
    let long = *u.choose(&[LongForm::Gnu, LongForm::Pax, LongForm::Prefix])?;
    let content_len = u.int_in_range(0..=700usize)?;
    let content: Vec<u8> = (0..content_len).map(|i| (i % 251) as u8).collect();
    let mut size = content.len() as u64;
    if u.ratio(1, 12)? {
        size = *u.choose(&[0u64, 1, 511, 513, 1 << 20, 1 << 33, u64::MAX >> 4])?;
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
    if u.ratio(1, 3)? {
        let n = u.int_in_range(1..=4u8)?;
        for _ in 0..n {
            let rec = match u.int_in_range(0..=9u8)? {
                0 => {
                    let t: &[u8] = u.choose(&[
                        &b"1700000000.123456789"[..],
                        b"-0.5",
                        b"-9223372036854775808.5",
                        b"99999999999999999999",
                        b"1.00000000000001",
                        b"-",
                        b".",
                    ])?;
                    pax_record(b"mtime", t)
                }
                1 => pax_record(b"uid", b"3000000000"),
                2 => pax_record(b"gid", b"99999999999"),
                3 => pax_record(b"SCHILY.xattr.user.foo", b"bar"),
                4 => pax_record(
                    b"SCHILY.xattr.security.capability",
                    b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
                ),
                5 => pax_record(b"LIBARCHIVE.xattr.user.b64", b"aGVsbG8="),
                6 => pax_record(b"size", size.to_string().as_bytes()),
                7 => pax_record(b"size", b"1048577"),
                8 => pax_record(b"GNU.sparse.major", b"1"),
                _ => pax_record(b"path", &path(u)?),
            };
            pax.extend(rec);
        }
    }
    if !pax.is_empty() {
        extension(out, b'x', &pax, Magic::Ustar);
    }
    let sparse = if kind == b'S' {
        let chunks = u.int_in_range(0..=6usize)?;
        let mut map = Vec::new();
        let mut off = 0u64;
        for _ in 0..chunks {
            off += u64::from(u.int_in_range(0..=2000u16)?);
            let len = 512 * u64::from(u.int_in_range(0..=2u8)?);
            map.push((off, len));
            off += len;
        }
        size = map.iter().map(|(_, l)| l).sum();
        Some((off + u64::from(u.int_in_range(0..=100u8)?), map))
    } else {
        None
    };
    let h = Hdr {
        name: name_field,
        prefix,
        link: &link,
        kind,
        size,
        mode: u64::from(u.arbitrary::<u16>()?) & 0o7777,
        uid: *u.choose(&[0u64, 1000, 0o7777777, 3_000_000_000])?,
        gid: 0,
        mtime: 1_700_000_000,
        dev: (
            u64::from(u.arbitrary::<u8>()?),
            u64::from(u.arbitrary::<u16>()?),
        ),
        magic,
        sparse: sparse.clone(),
        bad_checksum: u.ratio(1, 60)?,
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
    Ok(())
}

fn generate(data: &[u8]) -> Vec<u8> {
    let mut u = Unstructured::new(data);
    let mut out = Vec::new();
    let n = u.int_in_range(1..=10usize).unwrap_or(1);
    for _ in 0..n {
        if entry(&mut u, &mut out).is_err() {
            break;
        }
    }
    out.extend_from_slice(&[0u8; 1024]);
    match u.int_in_range(0..=9u8).unwrap_or(0) {
        0 => {
            let keep = u.int_in_range(0..=out.len()).unwrap_or(out.len());
            out.truncate(keep);
        }
        1 => out.extend_from_slice(b"trailing garbage after the end of the archive"),
        _ => {}
    }
    out
}

// ---------------------------------------------------------------- checks

fn listing(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            let p = e.expect("dir entry").path();
            let content = if p.is_file() {
                fs::read(&p).expect("read")
            } else {
                Vec::new()
            };
            (p, content)
        })
        .collect();
    out.sort();
    out
}

fn assert_only_files_and_dirs(dir: &Path) {
    for e in fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("dir entry").path();
        let ft = fs::symlink_metadata(&p).expect("lstat").file_type();
        if ft.is_dir() {
            assert_only_files_and_dirs(&p);
        } else {
            assert!(
                ft.is_file(),
                "{} is neither file nor directory",
                p.display()
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let tar = match data.split_first() {
        Some((0xff, rest)) => rest.to_vec(),
        _ => generate(data),
    };
    let run = run_dir();
    let _ = fs::remove_dir_all(&run);
    let layer = run.join("layer");
    let victim = victim_dir();
    fs::create_dir_all(&layer).expect("layer dir");
    fs::create_dir_all(&victim).expect("victim dir");
    fs::write(victim.join("keep"), VICTIM_CONTENT).expect("victim file");
    let before = listing(&run);

    let result = fuzz_extract(&tar, &layer);
    if let Err(LayerError::Internal(msg)) = &result {
        panic!("internal error: {msg}");
    }

    assert_eq!(
        listing(&run),
        before,
        "something appeared next to the layer"
    );
    assert_eq!(
        listing(&victim),
        vec![(victim.join("keep"), VICTIM_CONTENT.to_vec())],
        "the victim directory changed"
    );
    assert_only_files_and_dirs(&layer);
});
