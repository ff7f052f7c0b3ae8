//! Reading a tar entry's header fields the way GNU tar does: the path made safe (relative,
//! no `..`, limits on depth, length and name size), numeric fields in octal or base-256, and
//! PAX times with their nanoseconds (negative ones included).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rustix::fs::Timespec;

use super::ExtractLimits;
use crate::layer::LayerError;

/// Longest name of one path component Linux filesystems accept (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// Split a tar path into safe relative components. `None` means the root itself.
pub(super) fn sanitize(raw: &[u8], limits: &ExtractLimits) -> Result<Option<PathBuf>, LayerError> {
    let shown = || String::from_utf8_lossy(raw).into_owned();
    let unsafe_path = |reason: &'static str| LayerError::UnsafePath {
        path: shown(),
        reason,
    };
    if raw.is_empty() {
        return Err(unsafe_path("empty path"));
    }
    if raw.contains(&0) {
        return Err(unsafe_path("NUL byte in path"));
    }
    if raw[0] == b'/' {
        return Err(unsafe_path("absolute path"));
    }
    if raw.len() > limits.max_path_len {
        return Err(LayerError::Limit {
            limit: "max_path_len",
            value: raw.len() as u64,
            max: limits.max_path_len as u64,
            path: Some(shown()),
        });
    }
    let mut out = PathBuf::new();
    let mut depth = 0usize;
    let mut parent_is_whiteout = false;
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => continue,
            b".." => return Err(unsafe_path("`..` component")),
            c if c.len() > NAME_MAX => {
                return Err(unsafe_path(
                    "path component longer than 255 bytes (NAME_MAX)",
                ));
            }
            // `.wh.<name>` is a whiteout marker, never a directory: a path through one would
            // put entries under a name the index reads as a deletion.
            _ if parent_is_whiteout => {
                return Err(unsafe_path("whiteout name used as a parent directory"));
            }
            c => {
                depth += 1;
                parent_is_whiteout = c.starts_with(b".wh.");
                out.push(OsStr::from_bytes(c));
            }
        }
    }
    if depth > limits.max_depth {
        return Err(LayerError::Limit {
            limit: "max_depth",
            value: depth as u64,
            max: limits.max_depth as u64,
            path: Some(shown()),
        });
    }
    Ok((depth > 0).then_some(out))
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
    fn sanitize_accepts_relative_and_rejects_escapes() {
        assert_eq!(sanitize(b"./", &limits()).unwrap(), None);
        assert_eq!(sanitize(b".", &limits()).unwrap(), None);
        assert_eq!(
            sanitize(b"./usr//bin/./sh", &limits()).unwrap(),
            Some(PathBuf::from("usr/bin/sh"))
        );
        let long = [b'n'; 256];
        let through_whiteout = b"a/.wh.b/c";
        for bad in [
            &b"/etc/passwd"[..],
            b"../x",
            b"a/../../x",
            b"a/..",
            b"",
            b"a\0b",
            &long[..],
            through_whiteout,
        ] {
            assert!(
                sanitize(bad, &limits()).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let tight = ExtractLimits {
            max_depth: 2,
            ..limits()
        };
        assert!(matches!(
            sanitize(b"a/b/c", &tight),
            Err(LayerError::Limit {
                limit: "max_depth",
                ..
            })
        ));
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
