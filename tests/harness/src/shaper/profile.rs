//! Link profiles: what the shaper emulates (round-trip time, per-connection and whole-link
//! rates, slow start), the named ones (`lan`, `wan`, `slow`) and the parser for a profile
//! given by name or as `rtt=40ms,conn=25MB,link=200MB[,no-slow-start]`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// 10^6 bytes: rates and sizes in profiles are decimal.
pub const MB: u64 = 1_000_000;

/// Default token-bucket depth (the burst a bucket lets through at once).
pub const DEFAULT_BURST: u64 = 64 * 1024;

/// A link between the pullers and the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkProfile {
    /// `lan`, `wan`, `slow`, or `custom` for an explicit profile.
    pub name: String,
    /// Round-trip time; each direction delays every byte by half of it.
    pub rtt: Duration,
    /// Bytes per second in each direction of each connection (`None`: uncapped).
    pub conn_rate: Option<u64>,
    /// Bytes per second server→client shared by all connections (`None`: uncapped).
    pub link_rate: Option<u64>,
    /// Whether each new connection starts with a 10-segment window that doubles per RTT.
    pub slow_start: bool,
    /// Token-bucket depth in bytes (raised to 5 ms of the rate, see the module comment of
    /// `shaper`).
    pub burst: u64,
}

/// A profile string that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("link profile {spec:?}: {reason}")]
pub struct ProfileError {
    spec: String,
    reason: String,
}

impl LinkProfile {
    /// No shaping at all: the shaper only forwards.
    pub fn lan() -> LinkProfile {
        LinkProfile {
            name: "lan".into(),
            rtt: Duration::ZERO,
            conn_rate: None,
            link_rate: None,
            slow_start: false,
            burst: DEFAULT_BURST,
        }
    }

    /// 40 ms RTT, 25 MB/s per connection, 200 MB/s for the link, slow start.
    pub fn wan() -> LinkProfile {
        LinkProfile {
            name: "wan".into(),
            rtt: Duration::from_millis(40),
            conn_rate: Some(25 * MB),
            link_rate: Some(200 * MB),
            slow_start: true,
            burst: DEFAULT_BURST,
        }
    }

    /// 100 ms RTT, 8 MB/s per connection, 40 MB/s for the link, slow start.
    pub fn slow() -> LinkProfile {
        LinkProfile {
            name: "slow".into(),
            rtt: Duration::from_millis(100),
            conn_rate: Some(8 * MB),
            link_rate: Some(40 * MB),
            slow_start: true,
            burst: DEFAULT_BURST,
        }
    }

    /// The named profile, if `name` is one.
    pub fn named(name: &str) -> Option<LinkProfile> {
        match name {
            "lan" => Some(LinkProfile::lan()),
            "wan" => Some(LinkProfile::wan()),
            "slow" => Some(LinkProfile::slow()),
            _ => None,
        }
    }

    /// Parses `NAME[,OPTION…]` or `OPTION[,OPTION…]`. Options: `rtt=DURATION` (`40ms`,
    /// `0.1s`, `500us`, `0`), `conn=RATE` and `link=RATE` (`25MB`, `25MB/s`, `500KB`,
    /// `1GB`, `64KiB`, `100B`, or `off`), `burst=SIZE`, `slow-start`, `no-slow-start`.
    /// Options override the named profile's values; without a name everything starts
    /// uncapped with zero RTT and slow start on.
    pub fn parse(spec: &str) -> Result<LinkProfile, ProfileError> {
        let err = |reason: String| ProfileError {
            spec: spec.to_string(),
            reason,
        };
        let mut items = spec.split(',').map(str::trim).peekable();
        let mut profile = match items.peek().and_then(|first| LinkProfile::named(first)) {
            Some(p) => {
                items.next();
                p
            }
            None => LinkProfile {
                name: "custom".into(),
                slow_start: true,
                ..LinkProfile::lan()
            },
        };
        let mut options = 0;
        for item in items {
            options += 1;
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            match (key, value) {
                ("rtt", Some(v)) => profile.rtt = parse_duration(v).map_err(err)?,
                ("conn", Some(v)) => profile.conn_rate = parse_rate(v).map_err(err)?,
                ("link", Some(v)) => profile.link_rate = parse_rate(v).map_err(err)?,
                ("burst", Some(v)) => {
                    profile.burst = parse_size(v).map_err(err)?;
                    if profile.burst == 0 {
                        return Err(err("burst must be positive".into()));
                    }
                }
                ("slow-start", None) => profile.slow_start = true,
                ("no-slow-start", None) => profile.slow_start = false,
                _ => return Err(err(format!("unknown option {item:?}"))),
            }
        }
        if options > 0 && profile.name != "custom" {
            profile.name = format!("{}+", profile.name);
        }
        Ok(profile)
    }

    /// Half the RTT: how long each byte takes in either direction.
    pub fn one_way_delay(&self) -> Duration {
        self.rtt / 2
    }

    /// The rate that bounds one connection's server→client direction, if any.
    pub fn effective_conn_rate(&self) -> Option<u64> {
        match (self.conn_rate, self.link_rate) {
            (Some(c), Some(l)) => Some(c.min(l)),
            (c, l) => c.or(l),
        }
    }

    /// The profile as one JSON object (for scripts).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "spec": self.to_string(),
            "rtt_ms": self.rtt.as_secs_f64() * 1000.0,
            "conn_bytes_per_s": self.conn_rate,
            "link_bytes_per_s": self.link_rate,
            "slow_start": self.slow_start,
            "burst_bytes": self.burst,
        })
    }
}

impl FromStr for LinkProfile {
    type Err = ProfileError;

    fn from_str(s: &str) -> Result<LinkProfile, ProfileError> {
        LinkProfile::parse(s)
    }
}

/// The explicit form, which parses back to the same values (the name aside).
impl fmt::Display for LinkProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.rtt.as_micros();
        if us.is_multiple_of(1000) {
            write!(f, "rtt={}ms", us / 1000)?;
        } else {
            write!(f, "rtt={us}us")?;
        }
        let rate = |r: Option<u64>| r.map_or("off".to_string(), size_str);
        write!(
            f,
            ",conn={},link={},{},burst={}",
            rate(self.conn_rate),
            rate(self.link_rate),
            if self.slow_start {
                "slow-start"
            } else {
                "no-slow-start"
            },
            size_str(self.burst)
        )
    }
}

fn size_str(n: u64) -> String {
    for (unit, mult) in [("GB", 1_000_000_000), ("MB", MB), ("KB", 1000)] {
        if n >= mult && n.is_multiple_of(mult) {
            return format!("{}{unit}", n / mult);
        }
    }
    if n >= 1024 && n.is_multiple_of(1024) {
        return format!("{}KiB", n / 1024);
    }
    format!("{n}B")
}

fn parse_number(s: &str) -> Result<(f64, &str), String> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} does not start with a number"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{s:?} is not a non-negative number"));
    }
    Ok((value, unit.trim()))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (value, unit) = parse_number(s)?;
    let secs = match unit {
        "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "" if value == 0.0 => 0.0,
        _ => return Err(format!("duration {s:?} needs a unit: s, ms or us")),
    };
    if secs > 3600.0 {
        return Err(format!("duration {s:?} is over an hour"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_size(s: &str) -> Result<u64, String> {
    let (value, unit) = parse_number(s)?;
    let mult = match unit {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("size {s:?}: unknown unit {unit:?}")),
    };
    let bytes = (value * mult).round();
    if bytes > 1e15 {
        return Err(format!("size {s:?} is too large"));
    }
    Ok(bytes as u64)
}

fn parse_rate(s: &str) -> Result<Option<u64>, String> {
    if s == "off" {
        return Ok(None);
    }
    let bytes = parse_size(s.strip_suffix("/s").unwrap_or(s))?;
    if bytes == 0 {
        return Err(format!("rate {s:?} must be positive (or off)"));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_profiles() {
        assert_eq!(LinkProfile::parse("lan").unwrap(), LinkProfile::lan());
        let wan = LinkProfile::parse("wan").unwrap();
        assert_eq!(wan.rtt, Duration::from_millis(40));
        assert_eq!(wan.conn_rate, Some(25_000_000));
        assert_eq!(wan.link_rate, Some(200_000_000));
        assert!(wan.slow_start);
        let slow = LinkProfile::parse("slow").unwrap();
        assert_eq!(slow.one_way_delay(), Duration::from_millis(50));
        assert_eq!(slow.conn_rate, Some(8 * MB));
        assert_eq!(slow.link_rate, Some(40 * MB));
    }

    #[test]
    fn explicit_profiles() {
        let p = LinkProfile::parse("rtt=40ms,conn=25MB,link=200MB,no-slow-start").unwrap();
        assert_eq!(p.name, "custom");
        assert_eq!(p.rtt, Duration::from_millis(40));
        assert_eq!(p.conn_rate, Some(25 * MB));
        assert_eq!(p.link_rate, Some(200 * MB));
        assert!(!p.slow_start);
        let p = LinkProfile::parse("rtt=0.1s, conn=500KB/s, link=off, burst=16KiB").unwrap();
        assert_eq!(p.rtt, Duration::from_millis(100));
        assert_eq!(p.conn_rate, Some(500_000));
        assert_eq!(p.link_rate, None);
        assert_eq!(p.burst, 16 * 1024);
        assert!(p.slow_start);
        let p = LinkProfile::parse("wan,no-slow-start").unwrap();
        assert_eq!(p.name, "wan+");
        assert!(!p.slow_start);
        assert_eq!(p.conn_rate, Some(25 * MB));
    }

    #[test]
    fn display_parses_back() {
        for spec in [
            "wan",
            "slow",
            "lan",
            "rtt=1500us,conn=64KiB,link=3MB,no-slow-start",
        ] {
            let p = LinkProfile::parse(spec).unwrap();
            let q = LinkProfile::parse(&p.to_string()).unwrap();
            assert_eq!(
                (p.rtt, p.conn_rate, p.link_rate, p.slow_start, p.burst),
                (q.rtt, q.conn_rate, q.link_rate, q.slow_start, q.burst),
                "{spec} -> {p}"
            );
        }
    }

    #[test]
    fn bad_profiles() {
        for spec in [
            "",
            "moon",
            "rtt=40",
            "rtt=-1ms",
            "conn=0",
            "conn=fast",
            "link=5TB",
            "wan,nope",
            "burst=0",
            "slow-start=1",
        ] {
            assert!(LinkProfile::parse(spec).is_err(), "{spec:?} parsed");
        }
    }
}
