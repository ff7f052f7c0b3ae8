//! HTTP(S) proxies: the `proxy` setting ([`ProxyConfig`]), the rules it resolves to
//! ([`ProxyRules`]: a proxy per scheme and the hosts that bypass it) and their use by the
//! HTTP clients. The rules are ours rather than reqwest's, so the semantics are the ones
//! Podman and containerd have (Go's `httpproxy`):
//!
//! * `HTTPS_PROXY`/`https_proxy` for `https://` URLs, `HTTP_PROXY`/`http_proxy` for `http://`
//!   ones (upper case first; `HTTP_PROXY` is ignored when `REQUEST_METHOD` is set, in a CGI
//!   program, where a request's `Proxy:` header can set it). A proxy without a scheme is
//!   `http://`. `ALL_PROXY` is not read (as Go does not).
//! * `NO_PROXY`/`no_proxy`: entries separated by commas (or blanks): `*` (no proxy at all),
//!   `example.com` (it and its subdomains), `.example.com` (subdomains only), an IP address,
//!   a CIDR block (`10.0.0.0/8`), each optionally with `:port` (then only that port).
//! * Loopback (`localhost`, 127.0.0.0/8, `::1`) is never proxied by the environment's
//!   proxies: they are set for a whole machine or session and cannot reach its loopback (Go
//!   does the same). An explicit `proxy` setting is applied as written: a loopback host
//!   goes through it unless its `noProxy` lists it.
//!
//! A proxy URL may carry credentials (`http://user:pass@proxy:3128`, sent as
//! `Proxy-Authorization`); they never appear in errors, `Debug` output or progress events.

use std::net::IpAddr;
use std::sync::Arc;

use reqwest::Url;

use super::host_is_loopback;

/// The `proxy` setting: which proxy requests to registries go through. As data: `"env"` (the
/// default), `"off"`, or `{"https": "http://proxy:3128", "http": "…", "noProxy": ["…"]}`.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum ProxyConfig {
    /// From the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY` and their lower-case
    /// forms), read when the registry client is built.
    #[default]
    Env,
    /// Every request goes direct.
    Off,
    /// These proxies (each optional), bypassed for the hosts `no_proxy` matches (entries as
    /// in `NO_PROXY`).
    Explicit {
        /// The proxy for `https://` requests.
        https: Option<String>,
        /// The proxy for `http://` requests.
        http: Option<String>,
        /// Hosts that go direct.
        no_proxy: Vec<String>,
    },
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyConfig::Env => f.write_str("Env"),
            ProxyConfig::Off => f.write_str("Off"),
            ProxyConfig::Explicit {
                https,
                http,
                no_proxy,
            } => f
                .debug_struct("Explicit")
                .field("https", &https.as_deref().map(redact))
                .field("http", &http.as_deref().map(redact))
                .field("no_proxy", no_proxy)
                .finish(),
        }
    }
}

impl serde::Serialize for ProxyConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            ProxyConfig::Env => s.serialize_str("env"),
            ProxyConfig::Off => s.serialize_str("off"),
            ProxyConfig::Explicit {
                https,
                http,
                no_proxy,
            } => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("https", https)?;
                m.serialize_entry("http", http)?;
                m.serialize_entry("noProxy", no_proxy)?;
                m.end()
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for ProxyConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Explicit {
            #[serde(default)]
            https: Option<String>,
            #[serde(default)]
            http: Option<String>,
            #[serde(default)]
            no_proxy: Vec<String>,
        }
        #[derive(serde::Deserialize)]
        #[serde(
            untagged,
            expecting = "\"env\", \"off\" or {\"https\": URL, \"http\": URL, \"noProxy\": [HOST, …]}"
        )]
        enum Raw {
            Name(String),
            Explicit(Explicit),
        }
        match Raw::deserialize(d)? {
            Raw::Name(n) if n == "env" => Ok(ProxyConfig::Env),
            Raw::Name(n) if n == "off" => Ok(ProxyConfig::Off),
            Raw::Name(n) => Err(serde::de::Error::custom(format!(
                "unknown proxy setting {n:?}: expected \"env\", \"off\" or an object"
            ))),
            Raw::Explicit(e) => Ok(ProxyConfig::Explicit {
                https: e.https,
                http: e.http,
                no_proxy: e.no_proxy,
            }),
        }
    }
}

/// What a [`ProxyConfig`] resolved to: a proxy per scheme and the hosts that go direct.
#[derive(Clone, Default)]
pub(crate) struct ProxyRules {
    https: Option<Url>,
    http: Option<Url>,
    no_proxy: Vec<NoProxyEntry>,
    /// Loopback hosts go direct (the environment's proxies).
    direct_loopback: bool,
}

impl std::fmt::Debug for ProxyRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyRules")
            .field("https", &self.https.as_ref().map(|u| redact(u.as_str())))
            .field("http", &self.http.as_ref().map(|u| redact(u.as_str())))
            .field("no_proxy", &self.no_proxy.len())
            .finish()
    }
}

impl ProxyRules {
    /// Resolves `config`, reading environment variables through `env` (the process's
    /// environment for a client; a table in tests). A proxy URL that does not parse, or is
    /// not `http://`/`https://`, is an error naming the variable or setting (never its
    /// credentials).
    pub(crate) fn resolve(
        config: &ProxyConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ProxyRules, String> {
        let var = |upper: &str| {
            let lower = upper.to_ascii_lowercase();
            [upper.to_owned(), lower].into_iter().find_map(|name| {
                env(&name)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (name, v))
            })
        };
        let direct_loopback = *config == ProxyConfig::Env;
        let (https, http, no_proxy) = match config {
            ProxyConfig::Off => return Ok(ProxyRules::default()),
            ProxyConfig::Env => {
                let cgi = env("REQUEST_METHOD").is_some();
                let http = var("HTTP_PROXY").filter(|(name, _)| !(cgi && name == "HTTP_PROXY"));
                let no_proxy = var("NO_PROXY").map(|(_, v)| v).unwrap_or_default();
                (var("HTTPS_PROXY"), http, split_list(&no_proxy))
            }
            ProxyConfig::Explicit {
                https,
                http,
                no_proxy,
            } => (
                https.clone().map(|v| ("proxy.https".to_owned(), v)),
                http.clone().map(|v| ("proxy.http".to_owned(), v)),
                no_proxy.iter().flat_map(|e| split_list(e)).collect(),
            ),
        };
        Ok(ProxyRules {
            https: https.map(|(n, v)| proxy_url(&n, &v)).transpose()?,
            http: http.map(|(n, v)| proxy_url(&n, &v)).transpose()?,
            no_proxy: no_proxy
                .iter()
                .filter_map(|e| NoProxyEntry::parse(e))
                .collect(),
            direct_loopback,
        })
    }

    /// Whether any request may be proxied.
    pub(crate) fn is_empty(&self) -> bool {
        self.https.is_none() && self.http.is_none()
    }

    /// The proxy a request to `url` goes through, if any.
    pub(crate) fn proxy_for(&self, url: &Url) -> Option<&Url> {
        let proxy = match url.scheme() {
            "https" => self.https.as_ref()?,
            "http" => self.http.as_ref()?,
            _ => return None,
        };
        let host = url.host_str()?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if self.direct_loopback && host_is_loopback(host) {
            return None;
        }
        let port = url.port_or_known_default().unwrap_or(0);
        if self.no_proxy.iter().any(|e| e.matches(host, port)) {
            return None;
        }
        Some(proxy)
    }

    /// `builder` sending each request as these rules say (and never as reqwest's own reading
    /// of the environment would).
    pub(crate) fn apply(
        self: &Arc<Self>,
        builder: reqwest::ClientBuilder,
    ) -> reqwest::ClientBuilder {
        let builder = builder.no_proxy();
        if self.is_empty() {
            return builder;
        }
        let rules = self.clone();
        builder.proxy(reqwest::Proxy::custom(move |url| {
            rules.proxy_for(url).cloned()
        }))
    }

    /// ` (through proxy http://proxy:3128)` when a request to `url` is proxied, for an error
    /// that the proxy may be the cause of; credentials left out.
    pub(crate) fn note(&self, url: &str) -> String {
        Url::parse(url)
            .ok()
            .and_then(|u| {
                self.proxy_for(&u)
                    .map(|p| format!(" (through proxy {})", redact(p.as_str())))
            })
            .unwrap_or_default()
    }
}

/// A proxy URL from a variable or setting `name`; no scheme means `http://`.
fn proxy_url(name: &str, value: &str) -> Result<Url, String> {
    let value = value.trim();
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    let url = Url::parse(&with_scheme)
        .map_err(|e| format!("{name}: invalid proxy URL {:?}: {e}", redact(value)))?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(url),
        "http" | "https" => Err(format!("{name}: proxy URL {:?} has no host", redact(value))),
        other => Err(format!(
            "{name}: proxy scheme {other}:// is not supported (http:// or https:// only)"
        )),
    }
}

/// `value` (a proxy URL, with or without its scheme) without its user info:
/// `http://***@proxy:3128/`. Text that does not parse keeps only what follows its last `@`.
pub(crate) fn redact(value: &str) -> String {
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    match Url::parse(&with_scheme) {
        Ok(mut u) if u.has_host() => {
            if u.username().is_empty() && u.password().is_none() {
                return u.to_string();
            }
            let _ = u.set_password(None);
            let _ = u.set_username("");
            let s = u.to_string();
            let scheme_end = s.find("://").map_or(0, |i| i + 3);
            format!("{}***@{}", &s[..scheme_end], &s[scheme_end..])
        }
        _ => match value.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => value.to_owned(),
        },
    }
}

/// `a, b c` → `["a", "b", "c"]`.
fn split_list(s: &str) -> Vec<String> {
    s.split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One `NO_PROXY` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
enum NoProxyEntry {
    /// `*`: nothing is proxied.
    All,
    /// A domain: `suffix_only` (written `.example.com`) matches only its subdomains.
    Domain {
        name: String,
        suffix_only: bool,
        port: Option<u16>,
    },
    /// An IP address or block.
    Ip {
        net: IpAddr,
        prefix: u8,
        port: Option<u16>,
    },
}

impl NoProxyEntry {
    fn parse(entry: &str) -> Option<NoProxyEntry> {
        let e = entry.trim().to_ascii_lowercase();
        if e == "*" {
            return Some(NoProxyEntry::All);
        }
        // A CIDR block or an IP, bracketed or not, with or without a port.
        if let Some((ip, bits)) = e.split_once('/') {
            let net: IpAddr = ip.trim_matches(['[', ']']).parse().ok()?;
            let max = if net.is_ipv4() { 32 } else { 128 };
            let prefix = bits.parse::<u8>().ok().filter(|p| *p <= max)?;
            return Some(NoProxyEntry::Ip {
                net,
                prefix,
                port: None,
            });
        }
        let (host, port) = split_port(&e);
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            let prefix = if ip.is_ipv4() { 32 } else { 128 };
            return Some(NoProxyEntry::Ip {
                net: ip,
                prefix,
                port,
            });
        }
        let suffix_only = host.starts_with('.');
        let name = host.trim_start_matches('.').trim_start_matches("*.");
        let suffix_only = suffix_only || host.starts_with("*.");
        (!name.is_empty()).then(|| NoProxyEntry::Domain {
            name: name.to_owned(),
            suffix_only,
            port,
        })
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        match self {
            NoProxyEntry::All => true,
            NoProxyEntry::Domain {
                name,
                suffix_only,
                port: want,
            } => {
                let sub = host
                    .strip_suffix(name.as_str())
                    .is_some_and(|rest| rest.ends_with('.'));
                let name_matches = sub || (!suffix_only && host == name);
                name_matches && want.is_none_or(|p| p == port)
            }
            NoProxyEntry::Ip {
                net,
                prefix,
                port: want,
            } => {
                host.parse::<IpAddr>()
                    .is_ok_and(|ip| in_block(ip, *net, *prefix))
                    && want.is_none_or(|p| p == port)
            }
        }
    }
}

/// `host:port` → (`host`, port); a bare IPv6 address has no port.
fn split_port(e: &str) -> (&str, Option<u16>) {
    if let Some(rest) = e.strip_prefix('[') {
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (host, after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match e.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(p) => (host, Some(p)),
            Err(_) => (e, None),
        },
        _ => (e, None),
    }
}

fn in_block(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(vars: &[(&str, &str)]) -> ProxyRules {
        let env = |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        ProxyRules::resolve(&ProxyConfig::Env, env).unwrap()
    }

    fn via(r: &ProxyRules, url: &str) -> Option<String> {
        r.proxy_for(&Url::parse(url).unwrap()).map(Url::to_string)
    }

    #[test]
    fn the_scheme_picks_the_variable_and_upper_case_wins() {
        let r = rules(&[
            ("HTTPS_PROXY", "http://secure:3128"),
            ("https_proxy", "http://lower:1"),
            ("http_proxy", "plain:8080"),
        ]);
        assert_eq!(
            via(&r, "https://ghcr.io/v2/"),
            Some("http://secure:3128/".into())
        );
        assert_eq!(
            via(&r, "http://reg.example/v2/"),
            Some("http://plain:8080/".into())
        );
        assert_eq!(via(&r, "ftp://x/"), None);
        assert!(rules(&[]).is_empty());
    }

    #[test]
    fn loopback_is_never_proxied() {
        let r = rules(&[("HTTPS_PROXY", "http://p:1"), ("HTTP_PROXY", "http://p:1")]);
        for url in [
            "https://localhost:5000/v2/",
            "http://127.0.0.1:5000/v2/",
            "http://127.8.0.1/",
            "https://[::1]:5000/v2/",
        ] {
            assert_eq!(via(&r, url), None, "{url}");
        }
        assert!(via(&r, "https://localhost.example/").is_some());
        let explicit = ProxyConfig::Explicit {
            https: Some("http://p:1".into()),
            http: None,
            no_proxy: vec!["localhost".into()],
        };
        let r = ProxyRules::resolve(&explicit, |_| None).unwrap();
        assert!(via(&r, "https://127.0.0.1:5000/v2/").is_some());
        assert_eq!(via(&r, "https://localhost:5000/v2/"), None);
    }

    #[test]
    fn off_is_off_whatever_the_environment_says() {
        let env = |k: &str| k.ends_with("PROXY").then(|| "http://p:1".to_string());
        assert!(
            !ProxyRules::resolve(&ProxyConfig::Env, env)
                .unwrap()
                .is_empty()
        );
        assert!(
            ProxyRules::resolve(&ProxyConfig::Off, env)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn no_proxy_entries() {
        let r = rules(&[
            ("HTTPS_PROXY", "http://p:1"),
            (
                "no_proxy",
                "corp.example, .sub.example 10.0.0.0/8,192.168.1.5,only.example:5000,[2001:db8::1]",
            ),
        ]);
        let direct = [
            "https://corp.example/",
            "https://a.corp.example/",
            "https://x.sub.example/",
            "https://10.1.2.3/",
            "https://192.168.1.5:443/",
            "https://only.example:5000/",
            "https://[2001:db8::1]/",
        ];
        for url in direct {
            assert_eq!(via(&r, url), None, "{url}");
        }
        let proxied = [
            "https://notcorp.example/",
            "https://sub.example/",
            "https://11.0.0.1/",
            "https://192.168.1.6/",
            "https://only.example/",
            "https://[2001:db8::2]/",
        ];
        for url in proxied {
            assert!(via(&r, url).is_some(), "{url}");
        }
        let all = rules(&[("HTTPS_PROXY", "http://p:1"), ("NO_PROXY", "*")]);
        assert_eq!(via(&all, "https://ghcr.io/"), None);
    }

    #[test]
    fn cgi_programs_ignore_upper_case_http_proxy() {
        let r = rules(&[("HTTP_PROXY", "http://evil:1"), ("REQUEST_METHOD", "GET")]);
        assert_eq!(via(&r, "http://reg.example/"), None);
    }

    #[test]
    fn bad_proxies_are_named_without_their_password() {
        let env = |k: &str| (k == "HTTPS_PROXY").then(|| "socks5://u:secret@p:1080".to_string());
        let err = ProxyRules::resolve(&ProxyConfig::Env, env).unwrap_err();
        assert!(
            err.contains("HTTPS_PROXY") && err.contains("socks5"),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");
        let cfg = ProxyConfig::Explicit {
            https: Some("http://u:secret@[bad".into()),
            http: None,
            no_proxy: vec![],
        };
        let err = ProxyRules::resolve(&cfg, |_| None).unwrap_err();
        assert!(
            err.contains("proxy.https") && !err.contains("secret"),
            "{err}"
        );
        assert!(!format!("{cfg:?}").contains("secret"));
    }

    #[test]
    fn redaction_keeps_the_host() {
        assert_eq!(
            redact("http://user:pw@proxy:3128"),
            "http://***@proxy:3128/"
        );
        assert_eq!(redact("user:pw@proxy:3128"), "http://***@proxy:3128/");
        assert_eq!(redact("http://proxy:3128"), "http://proxy:3128/");
    }

    #[test]
    fn as_data() {
        let c: ProxyConfig = serde_json::from_str(r#""off""#).unwrap();
        assert_eq!(c, ProxyConfig::Off);
        let c: ProxyConfig =
            serde_json::from_str(r#"{"https": "http://p:1", "noProxy": ["a.example"]}"#).unwrap();
        assert_eq!(
            c,
            ProxyConfig::Explicit {
                https: Some("http://p:1".into()),
                http: None,
                no_proxy: vec!["a.example".into()]
            }
        );
        assert_eq!(serde_json::to_value(&c).unwrap()["noProxy"][0], "a.example");
        assert!(serde_json::from_str::<ProxyConfig>(r#""system""#).is_err());
        assert!(serde_json::from_str::<ProxyConfig>(r#"{"htps": "x"}"#).is_err());
    }
}
