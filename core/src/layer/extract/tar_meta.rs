//! Reading a tar entry's header fields the way GNU tar does: the name cleaned lexically and
//! kept inside the layer root (limits on depth, length and name size), numeric fields in
//! octal or base-256, and PAX times with their nanoseconds (negative ones included).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rustix::fs::Timespec;

use super::ExtractLimits;
use crate::layer::LayerError;

/// Longest name of one path component Linux filesystems accept (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// Clean a tar entry's name lexically, as containerd (`filepath.Clean`), GNU tar and umoci
/// read it: empty and `.` components go, `..` removes the component before it, and leading
/// `/` and `..` that would climb above the layer root are dropped (so `/etc/passwd` and
/// `../../etc/passwd` both name `etc/passwd` of the layer). `None` means the root itself.
/// Refuses NUL bytes and components over `NAME_MAX`, and checks the path limits.
pub(super) fn clean_name(
    raw: &[u8],
    limits: &ExtractLimits,
) -> Result<Option<PathBuf>, LayerError> {
    let shown = || String::from_utf8_lossy(raw).into_owned();
    if raw.contains(&0) {
        return Err(LayerError::UnsafePath {
            path: shown(),
            reason: "NUL byte in path",
        });
    }
    if raw.len() > limits.max_path_len {
        return Err(LayerError::Limit {
            limit: "max_path_len",
            value: raw.len() as u64,
            max: limits.max_path_len as u64,
            path: Some(shown()),
        });
    }
    let comps = clean_components(raw.split(|b| *b == b'/'));
    if comps.iter().any(|c| c.len() > NAME_MAX) {
        return Err(LayerError::UnsafePath {
            path: shown(),
            reason: "path component longer than 255 bytes (NAME_MAX)",
        });
    }
    if comps.len() > limits.max_depth {
        return Err(LayerError::Limit {
            limit: "max_depth",
            value: comps.len() as u64,
            max: limits.max_depth as u64,
            path: Some(shown()),
        });
    }
    if comps.is_empty() {
        return Ok(None);
    }
    Ok(Some(comps.iter().map(|c| OsStr::from_bytes(c)).collect()))
}

/// Lexical cleaning of path components, clamped at the root: what `filepath.Join("/", p)`
/// leaves of `p`, as components.
pub(super) fn clean_components<'a>(comps: impl IntoIterator<Item = &'a [u8]>) -> Vec<&'a [u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in comps {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// A numeric tar header field: octal text (NUL- or space-padded, empty meaning 0, as GNU tar
/// and Go's archive/tar read it) or GNU base-256 binary (high bit of the first byte set).
pub(super) fn numeric_field(raw: &[u8]) -> Option<u64> {
    if let Some(&first) = raw.first()
        && first & 0x80 != 0
    {
        if first & 0x40 != 0 {
            return None; // negative base-256 numbers are not valid ids, modes or times here
        }
        let mut v: u64 = u64::from(first & 0x3f);
        for &b in &raw[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let text = raw.split(|b| *b == 0).next().unwrap_or(&[]);
    let text = text.trim_ascii();
    if text.is_empty() {
        return Some(0);
    }
    let mut v: u64 = 0;
    for &b in text {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        v = v.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

pub(super) fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let mut tv_nsec: i64 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    for _ in digits.len()..9 {
        tv_nsec *= 10;
    }
    if secs.starts_with('-') && tv_nsec > 0 {
        // "-1.5" means 1.5 s before the epoch ("-0.5" too: its integer part reads as 0).
        return Some(Timespec {
            tv_sec: tv_sec.checked_sub(1)?,
            tv_nsec: 1_000_000_000 - tv_nsec,
        });
    }
    Some(Timespec { tv_sec, tv_nsec })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ExtractLimits {
        ExtractLimits::default()
    }

    #[test]
    fn names_are_cleaned_and_clamped_at_the_layer_root() {
        let clean = |raw: &[u8]| clean_name(raw, &limits()).unwrap();
        for root in [&b"./"[..], b".", b"", b"/", b"..", b"a/..", b"../..", b"//"] {
            assert_eq!(clean(root), None, "{:?}", String::from_utf8_lossy(root));
        }
        for (raw, want) in [
            (&b"./usr//bin/./sh"[..], "usr/bin/sh"),
            (b"/etc/passwd", "etc/passwd"),
            (b"/localetc//", "localetc"),
            (b"../x", "x"),
            (b"a/../../x", "x"),
            (b"dne/../.wh.etc", ".wh.etc"),
            (b"localetc/sub/..", "localetc"),
            (b"a/.wh.b/c", "a/.wh.b/c"),
        ] {
            assert_eq!(clean(raw), Some(PathBuf::from(want)), "{want}");
        }
        let long = [b'n'; 256];
        for bad in [&b"a\0b"[..], &long[..]] {
            assert!(clean_name(bad, &limits()).is_err());
        }
        let mut popped = long.to_vec();
        popped.extend_from_slice(b"/../ok");
        assert_eq!(clean(&popped), Some(PathBuf::from("ok")));
        let tight = ExtractLimits {
            max_depth: 2,
            ..limits()
        };
        assert!(matches!(
            clean_name(b"a/b/c", &tight),
            Err(LayerError::Limit {
                limit: "max_depth",
                ..
            })
        ));
        assert!(clean_name(b"a/b/../c", &tight).is_ok());
    }

    #[test]
    fn numeric_fields_are_read_like_gnu_tar() {
        assert_eq!(numeric_field(b"0000644\0"), Some(0o644));
        assert_eq!(numeric_field(b"   755 \0"), Some(0o755));
        assert_eq!(
            numeric_field(b"\0\0\0\0\0\0\0\0"),
            Some(0),
            "all-NUL means 0"
        );
        assert_eq!(numeric_field(b"        "), Some(0));
        assert_eq!(numeric_field(&[0x80, 0, 0, 0, 0, 0, 0x01, 0x00]), Some(256));
        assert_eq!(numeric_field(b"12x4\0"), None);
        assert_eq!(numeric_field(&[0xff; 8]), None, "negative binary");
    }

    #[test]
    fn pax_times_keep_nanoseconds() {
        assert_eq!(
            parse_pax_time(b"1700000000.5"),
            Some(Timespec {
                tv_sec: 1_700_000_000,
                tv_nsec: 500_000_000
            })
        );
        assert_eq!(
            parse_pax_time(b"12"),
            Some(Timespec {
                tv_sec: 12,
                tv_nsec: 0
            })
        );
        assert_eq!(parse_pax_time(b"x"), None);
        assert_eq!(
            parse_pax_time(b"-0.5"),
            Some(Timespec {
                tv_sec: -1,
                tv_nsec: 500_000_000
            })
        );
        assert_eq!(parse_pax_time(b"-9223372036854775808.5"), None);
        assert_eq!(
            parse_pax_time(b"-1.25"),
            Some(Timespec {
                tv_sec: -2,
                tv_nsec: 750_000_000
            })
        );
    }
}
