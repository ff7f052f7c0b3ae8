//! Target platforms (`os/architecture[/variant]`): the [`Platform`] an image is pulled for, the
//! shared normaliser that maps the many spellings of an architecture to the OCI/Go names
//! ([`normalize_arch`]), and the scoring that picks the best entry of an image index for a
//! target ([`Platform::score`]).
//!
//! Normalisation follows containerd's `platforms` package, with one deliberate difference:
//! architectures whose variant has a well-known default store that default explicitly.
//! `arm64` without a variant is `arm64/v8` and `arm` without a variant is `arm/v7`, so
//! `linux/arm64` and `linux/arm64/v8` are the same [`Platform`] and an index entry that omits the
//! variant matches exactly. Every other architecture keeps `None` when no variant is given
//! (`amd64/v1` is the baseline and normalises to plain `amd64`).

use std::fmt;
use std::str::FromStr;

/// Score of a candidate that matches the target exactly (after normalisation).
const EXACT: u32 = 1000;
/// Score of a candidate accepted only because the target does not name a variant, or because
/// the candidate is the variant-less baseline of an architecture without variant ordering.
const LOOSE: u32 = 500;

/// Why a string is not a valid `os/arch[/variant]` platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformParseError {
    /// The input is empty.
    #[error("invalid platform \"\": expected os/arch or os/arch/variant, e.g. linux/arm64")]
    Empty,
    /// Fewer than two or more than three `/`-separated parts.
    #[error(
        "invalid platform {input:?}: expected os/arch or os/arch/variant, e.g. linux/arm64, \
         but found {parts} part(s)"
    )]
    WrongPartCount {
        /// The whole input.
        input: String,
        /// How many `/`-separated parts it has.
        parts: usize,
    },
    /// One of the parts is empty (`linux/`, `/amd64`, `linux/arm/`).
    #[error("invalid platform {input:?}: the {part} is empty")]
    EmptyPart {
        /// The whole input.
        input: String,
        /// Which part: `os`, `architecture` or `variant`.
        part: &'static str,
    },
    /// A part has characters other than ASCII letters, digits, `.`, `_` and `-`.
    #[error(
        "invalid platform {input:?}: the {part} may only contain letters, digits, '.', '_' and '-'"
    )]
    InvalidCharacters {
        /// The whole input.
        input: String,
        /// Which part: `os`, `architecture` or `variant`.
        part: &'static str,
    },
}

/// The OCI spec's operating systems (`Os::Linux`), as the original `microsandbox-image` crate
/// exported them; [`Platform::new`] takes them as well as strings.
pub type Os = oci_spec::image::Os;

/// The OCI spec's architectures (`Arch::Amd64`, `Arch::ARM64`), as the original
/// `microsandbox-image` crate exported them; [`Platform::new`] takes them as well as strings.
pub type Arch = oci_spec::image::Arch;

/// An OS or architecture name as [`Platform::new`] takes it: a string, an [`Os`] or an
/// [`Arch`].
///
/// ```
/// use microsandbox_image::{Arch, Os, Platform};
/// assert_eq!(Platform::new(Os::Linux, Arch::ARM64), Platform::new("linux", "arm64"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformName(String);

impl From<&str> for PlatformName {
    fn from(s: &str) -> Self {
        PlatformName(s.to_owned())
    }
}
impl From<String> for PlatformName {
    fn from(s: String) -> Self {
        PlatformName(s)
    }
}
impl From<&String> for PlatformName {
    fn from(s: &String) -> Self {
        PlatformName(s.clone())
    }
}
impl From<Box<str>> for PlatformName {
    fn from(s: Box<str>) -> Self {
        PlatformName(s.into())
    }
}
impl From<std::borrow::Cow<'_, str>> for PlatformName {
    fn from(s: std::borrow::Cow<'_, str>) -> Self {
        PlatformName(s.into_owned())
    }
}
impl From<Os> for PlatformName {
    fn from(os: Os) -> Self {
        PlatformName(os.to_string())
    }
}
impl From<Arch> for PlatformName {
    fn from(arch: Arch) -> Self {
        PlatformName(arch.to_string())
    }
}

/// A target platform: operating system, CPU architecture and optional variant, all stored
/// normalised (lowercase OCI/Go names, default variants explicit — see the module docs).
///
/// Parses from and prints as `os/arch[/variant]`; serialises as that string.
///
/// ```
/// use microsandbox_image::Platform;
///
/// let p: Platform = "linux/aarch64".parse().unwrap();
/// assert_eq!(p.to_string(), "linux/arm64/v8");
/// assert_eq!(p, Platform::new("linux", "arm64"));
///
/// // Pick the best entry of an image index.
/// let entries = [("linux", "amd64", None), ("linux", "arm64", Some("v8"))];
/// let best = entries
///     .iter()
///     .filter_map(|(os, arch, v)| p.score(os, arch, *v).map(|s| (s, arch)))
///     .max();
/// assert_eq!(best.map(|(_, arch)| *arch), Some("arm64"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl Platform {
    /// Linux on the architecture this program was compiled for (`linux/amd64` on x86-64,
    /// `linux/arm64/v8` on AArch64). Images run in a Linux guest of the host's architecture.
    pub fn host_linux() -> Platform {
        // `std::env::consts::ARCH` does not say the byte order; Go/OCI names do.
        let little = cfg!(target_endian = "little");
        let arch = match std::env::consts::ARCH {
            "powerpc64" if little => "ppc64le",
            "mips" if little => "mipsle",
            "mips64" if little => "mips64le",
            other => other,
        };
        Platform::new("linux", arch)
    }

    /// A platform with the architecture's default variant, normalised
    /// (see [`normalize_arch`]).
    ///
    /// ```
    /// use microsandbox_image::Platform;
    /// assert_eq!(Platform::new("Linux", "x86_64").to_string(), "linux/amd64");
    /// assert_eq!(Platform::new("linux", "armhf").to_string(), "linux/arm/v7");
    /// ```
    pub fn new(os: impl Into<PlatformName>, architecture: impl Into<PlatformName>) -> Platform {
        let (architecture, variant) = normalize_arch(&architecture.into().0, None);
        Platform {
            os: normalize_os(&os.into().0),
            architecture,
            variant,
        }
    }

    /// A platform with an explicit variant, normalised (see [`normalize_arch`]). An empty
    /// variant means the architecture's default, as in [`new`](Self::new).
    ///
    /// ```
    /// use microsandbox_image::Platform;
    /// assert_eq!(Platform::with_variant("linux", "arm", "6").to_string(), "linux/arm/v6");
    /// assert_eq!(Platform::with_variant("linux", "amd64", "v1"), Platform::new("linux", "amd64"));
    /// ```
    pub fn with_variant(
        os: impl Into<PlatformName>,
        architecture: impl Into<PlatformName>,
        variant: impl Into<String>,
    ) -> Platform {
        let (architecture, variant) = normalize_arch(&architecture.into().0, Some(&variant.into()));
        Platform {
            os: normalize_os(&os.into().0),
            architecture,
            variant,
        }
    }

    /// The operating system: `linux`.
    pub fn os(&self) -> &str {
        &self.os
    }

    /// The architecture, as OCI/Go names it: `amd64`, `arm64`, `arm`, `386`, `ppc64le`, ….
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// The variant: always `Some` for `arm64` (default `v8`) and `arm` (default `v7`), otherwise
    /// only when one was given (`amd64/v3`).
    pub fn variant(&self) -> Option<&str> {
        self.variant.as_deref()
    }

    /// How well a candidate (as listed in an image index) fits this target. `None` means the
    /// candidate cannot run here. Higher is better; the values only mean something relative to
    /// each other, for one target.
    ///
    /// The candidate's fields are normalised first (`aarch64`, `x86_64`, `armhf`, a missing
    /// `arm64` variant, …). The OS and architecture must then be equal; there is no cross-arch
    /// fallback (an `arm64` target does not take 32-bit `arm` images, nor `amd64` `386`). For
    /// the variant, an exact match scores highest; otherwise:
    ///
    /// * `arm`: a `vN` target runs `vM` images for `M <= N`, preferring the closest
    ///   (a `v7` target ranks `v7 > v6 > v5`; a `v6` target rejects `v7`).
    /// * `arm64`: a `v8.x`/`v9.x` target runs images of the same or an older level (`v9.m`
    ///   also covers `v8.(m+5)`, as in containerd), preferring the closest. Entries without a
    ///   variant are `v8`.
    /// * `amd64`: a `vN` target runs `v1`..`vN` images, preferring the closest. A target
    ///   without a variant accepts any `amd64` entry, preferring the plain (baseline) one, then
    ///   the lowest level.
    /// * other architectures: different variants never match; a target without a variant
    ///   accepts any variant, and a target with one accepts a variant-less (baseline) entry,
    ///   both below an exact match.
    ///
    /// ```
    /// use microsandbox_image::Platform;
    /// let v7 = Platform::with_variant("linux", "arm", "v7");
    /// let exact = v7.score("linux", "arm", Some("v7")).unwrap();
    /// let older = v7.score("linux", "arm", Some("v6")).unwrap();
    /// assert!(exact > older);
    /// assert_eq!(v7.score("linux", "arm", Some("v8")), None);
    /// assert_eq!(v7.score("windows", "arm", Some("v7")), None);
    /// ```
    pub fn score(&self, os: &str, architecture: &str, variant: Option<&str>) -> Option<u32> {
        if normalize_os(os) != self.os {
            return None;
        }
        let (architecture, variant) = normalize_arch(architecture, variant);
        if architecture != self.architecture {
            return None;
        }
        let target = self.variant.as_deref();
        let candidate = variant.as_deref();
        if target == candidate {
            return Some(EXACT);
        }
        match architecture.as_str() {
            "arm" => {
                let t = arm_level(target?)?;
                let c = arm_level(candidate?)?;
                (c <= t).then(|| EXACT.saturating_sub(t - c))
            }
            "arm64" => {
                let t = arm64_level(target?)?;
                let c = arm64_level(candidate?)?;
                arm64_runs(t, c).then(|| EXACT.saturating_sub(arm64_rank(t) - arm64_rank(c)))
            }
            "amd64" => {
                let c = amd64_level(candidate)?;
                match target {
                    None => Some(LOOSE - c),
                    Some(t) => {
                        let t = amd64_level(Some(t))?;
                        (c <= t).then(|| EXACT.saturating_sub(t - c))
                    }
                }
            }
            _ => match (target, candidate) {
                (None, Some(_)) | (Some(_), None) => Some(LOOSE),
                _ => None,
            },
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformParseError;

    /// Parses `os/arch` or `os/arch/variant` (as given to a `--platform` flag), normalising
    /// each part.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.is_empty() {
            return Err(PlatformParseError::Empty);
        }
        let parts: Vec<&str> = input.split('/').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(PlatformParseError::WrongPartCount {
                input: input.to_owned(),
                parts: parts.len(),
            });
        }
        for (part, name) in parts.iter().zip(["os", "architecture", "variant"]) {
            if part.is_empty() {
                return Err(PlatformParseError::EmptyPart {
                    input: input.to_owned(),
                    part: name,
                });
            }
            let ok = part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !ok {
                return Err(PlatformParseError::InvalidCharacters {
                    input: input.to_owned(),
                    part: name,
                });
            }
        }
        match parts[..] {
            [os, arch] => Ok(Platform::new(os, arch)),
            [os, arch, variant] => Ok(Platform::with_variant(os, arch, variant)),
            _ => Err(PlatformParseError::WrongPartCount {
                input: input.to_owned(),
                parts: parts.len(),
            }),
        }
    }
}

impl serde::Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Platform {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Normalises an architecture and variant to the OCI/Go spelling. Shared by [`Platform`]
/// construction and by [`Platform::score`] for index entries.
///
/// Both are trimmed and lowercased; an empty variant is `None`. Aliases:
///
/// | input                                          | architecture | variant            |
/// |------------------------------------------------|--------------|--------------------|
/// | `x86_64`, `x86-64`, `amd64`, `x64`             | `amd64`      | kept; `v1` → none  |
/// | `aarch64`, `arm64`                             | `arm64`      | `v8` default; `8`, `v8.0` → `v8`; `9`, `9.0`, `v9.0` → `v9`; `8.2` → `v8.2` |
/// | `arm`                                          | `arm`        | `v7` default; `5`–`8` → `v5`–`v8` |
/// | `armhf`, `armv7l`, `armv7`                     | `arm`        | `v7`               |
/// | `armel`, `armv6l`, `armv6`                     | `arm`        | `v6`               |
/// | `armv5l`, `armv5tel`, `armv5tejl`, `armv5`     | `arm`        | `v5`               |
/// | `armv8l`                                       | `arm`        | `v8`               |
/// | `i386`, `i486`, `i586`, `i686`, `x86`, `386`   | `386`        | kept               |
/// | `ppc64le`, `powerpc64le`, `ppc64el`            | `ppc64le`    | kept               |
/// | `ppc64`, `powerpc64`                           | `ppc64`      | kept               |
/// | `loongarch64`, `loong64`                       | `loong64`    | kept               |
/// | `mips64el`, `mips64le`; `mipsel`, `mipsle`     | `mips64le`; `mipsle` | kept       |
/// | anything else (`s390x`, `riscv64`, …)          | unchanged    | kept               |
///
/// ```
/// use microsandbox_image::platform::normalize_arch;
/// assert_eq!(normalize_arch("aarch64", None), ("arm64".to_owned(), Some("v8".to_owned())));
/// assert_eq!(normalize_arch("x86_64", Some("v1")), ("amd64".to_owned(), None));
/// assert_eq!(normalize_arch("armhf", None), ("arm".to_owned(), Some("v7".to_owned())));
/// ```
pub fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.trim().to_ascii_lowercase();
    let variant = variant
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty());
    let fixed = |a: &str, v: &str| (a.to_owned(), Some(v.to_owned()));
    match arch.as_str() {
        "x86_64" | "x86-64" | "amd64" | "x64" => {
            ("amd64".to_owned(), variant.filter(|v| v != "v1"))
        }
        "aarch64" | "arm64" => {
            let variant = match variant.as_deref() {
                None | Some("8" | "v8" | "8.0" | "v8.0") => "v8".to_owned(),
                Some("9" | "v9" | "9.0" | "v9.0") => "v9".to_owned(),
                Some(v) if v.starts_with(|c: char| c.is_ascii_digit()) => format!("v{v}"),
                Some(v) => v.to_owned(),
            };
            ("arm64".to_owned(), Some(variant))
        }
        "arm" => {
            let variant = match variant.as_deref() {
                None | Some("7") => "v7".to_owned(),
                Some(v @ ("5" | "6" | "8")) => format!("v{v}"),
                Some(v) => v.to_owned(),
            };
            ("arm".to_owned(), Some(variant))
        }
        "armhf" | "armv7l" | "armv7" => fixed("arm", "v7"),
        "armel" | "armv6l" | "armv6" => fixed("arm", "v6"),
        "armv5l" | "armv5tel" | "armv5tejl" | "armv5" => fixed("arm", "v5"),
        "armv8l" => fixed("arm", "v8"),
        "i386" | "i486" | "i586" | "i686" | "x86" | "386" => ("386".to_owned(), variant),
        "ppc64le" | "powerpc64le" | "ppc64el" => ("ppc64le".to_owned(), variant),
        "ppc64" | "powerpc64" => ("ppc64".to_owned(), variant),
        "loongarch64" | "loong64" => ("loong64".to_owned(), variant),
        "mips64el" | "mips64le" => ("mips64le".to_owned(), variant),
        "mipsel" | "mipsle" => ("mipsle".to_owned(), variant),
        _ => (arch, variant),
    }
}

/// Lowercases and trims an OS name; `macos` is `darwin`, as in Go/OCI.
fn normalize_os(os: &str) -> String {
    let os = os.trim().to_ascii_lowercase();
    if os == "macos" {
        "darwin".to_owned()
    } else {
        os
    }
}

/// `vN` → N for 32-bit ARM variants.
fn arm_level(variant: &str) -> Option<u32> {
    variant.strip_prefix('v')?.parse().ok()
}

/// `vM` / `vM.N` → (M, N) for arm64 variants (M is 8 or 9, N below 100, which keeps the rank
/// arithmetic far from overflow).
fn arm64_level(variant: &str) -> Option<(u32, u32)> {
    let v = variant.strip_prefix('v')?;
    let (major, minor) = match v.split_once('.') {
        Some((major, minor)) => (major.parse().ok()?, minor.parse().ok()?),
        None => (v.parse().ok()?, 0),
    };
    (matches!(major, 8 | 9) && minor < 100).then_some((major, minor))
}

/// Whether an arm64 `target` level runs a `candidate` level image.
fn arm64_runs(target: (u32, u32), candidate: (u32, u32)) -> bool {
    match (target.0, candidate.0) {
        (8, 8) | (9, 9) => candidate.1 <= target.1,
        (9, 8) => candidate.1 <= target.1 + 5,
        _ => false,
    }
}

/// A linear order on arm64 levels in which `v9.m` sits just above `v8.(m+5)`.
fn arm64_rank((major, minor): (u32, u32)) -> u32 {
    if major == 9 {
        2 * (minor + 5) + 1
    } else {
        2 * minor
    }
}

/// amd64 micro-architecture level: none/`v1` → 1, `v2` → 2, …; unknown variants → `None`.
fn amd64_level(variant: Option<&str>) -> Option<u32> {
    match variant {
        None => Some(1),
        Some(v) => v
            .strip_prefix('v')?
            .parse()
            .ok()
            .filter(|n| (1..=4).contains(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
        normalize_arch(arch, variant)
    }

    #[test]
    fn normalisation_aliases() {
        let cases: &[(&str, Option<&str>, &str, Option<&str>)] = &[
            ("x86_64", None, "amd64", None),
            ("x86-64", None, "amd64", None),
            ("amd64", None, "amd64", None),
            ("AMD64", None, "amd64", None),
            (" x64 ", None, "amd64", None),
            ("amd64", Some("v1"), "amd64", None),
            ("amd64", Some("V3"), "amd64", Some("v3")),
            ("amd64", Some(""), "amd64", None),
            ("aarch64", None, "arm64", Some("v8")),
            ("arm64", None, "arm64", Some("v8")),
            ("arm64", Some("v8"), "arm64", Some("v8")),
            ("arm64", Some("8"), "arm64", Some("v8")),
            ("arm64", Some("v8.0"), "arm64", Some("v8")),
            ("arm64", Some(""), "arm64", Some("v8")),
            ("arm64", Some("9"), "arm64", Some("v9")),
            ("arm64", Some("v9.0"), "arm64", Some("v9")),
            ("arm64", Some("8.2"), "arm64", Some("v8.2")),
            ("AArch64", Some("V8.2"), "arm64", Some("v8.2")),
            ("arm", None, "arm", Some("v7")),
            ("arm", Some("7"), "arm", Some("v7")),
            ("arm", Some("6"), "arm", Some("v6")),
            ("arm", Some("v5"), "arm", Some("v5")),
            ("arm", Some("8"), "arm", Some("v8")),
            ("armv7l", None, "arm", Some("v7")),
            ("armv7", None, "arm", Some("v7")),
            ("armhf", None, "arm", Some("v7")),
            ("armel", None, "arm", Some("v6")),
            ("armv6l", None, "arm", Some("v6")),
            ("armv5tel", None, "arm", Some("v5")),
            ("armv8l", None, "arm", Some("v8")),
            ("i386", None, "386", None),
            ("i686", None, "386", None),
            ("x86", None, "386", None),
            ("386", None, "386", None),
            ("powerpc64le", None, "ppc64le", None),
            ("ppc64el", None, "ppc64le", None),
            ("ppc64le", None, "ppc64le", None),
            ("powerpc64", None, "ppc64", None),
            ("s390x", None, "s390x", None),
            ("riscv64", None, "riscv64", None),
            ("riscv64", Some("RVA23"), "riscv64", Some("rva23")),
            ("loongarch64", None, "loong64", None),
            ("loong64", None, "loong64", None),
            ("mips64el", None, "mips64le", None),
            ("mipsel", None, "mipsle", None),
            ("wasm", None, "wasm", None),
        ];
        for &(arch, variant, want_arch, want_variant) in cases {
            assert_eq!(
                n(arch, variant),
                (want_arch.to_owned(), want_variant.map(str::to_owned)),
                "normalize_arch({arch:?}, {variant:?})"
            );
        }
    }

    #[test]
    fn constructors_normalise() {
        let p = Platform::new("Linux", "AArch64");
        assert_eq!(
            (p.os(), p.architecture(), p.variant()),
            ("linux", "arm64", Some("v8"))
        );
        assert_eq!(
            Platform::new("linux", "arm64"),
            Platform::with_variant("linux", "arm64", "v8")
        );
        assert_eq!(
            Platform::new("linux", "arm64"),
            Platform::with_variant("linux", "aarch64", "")
        );
        assert_eq!(
            Platform::new("linux", "arm"),
            Platform::with_variant("linux", "armv7l", "7")
        );
        assert_eq!(Platform::new("linux", "x86_64").variant(), None);
        assert_eq!(Platform::new("macos", "arm64").os(), "darwin");
    }

    /// (target, candidate os, arch, variant, expected score or None)
    type ScoreCase<'a> = (&'a Platform, &'a str, &'a str, Option<&'a str>, Option<u32>);

    #[test]
    fn scoring_table() {
        let arm64 = Platform::new("linux", "arm64");
        let amd64 = Platform::new("linux", "amd64");
        let amd64_v3 = Platform::with_variant("linux", "amd64", "v3");
        let v7 = Platform::new("linux", "arm");
        let v6 = Platform::with_variant("linux", "arm", "v6");
        let riscv = Platform::new("linux", "riscv64");
        let cases: &[ScoreCase] = &[
            // Exact matches, through aliases.
            (&amd64, "linux", "amd64", None, Some(EXACT)),
            (&amd64, "linux", "x86_64", None, Some(EXACT)),
            (&amd64, "Linux", "amd64", Some("v1"), Some(EXACT)),
            (&arm64, "linux", "arm64", Some("v8"), Some(EXACT)),
            (&arm64, "linux", "arm64", None, Some(EXACT)),
            (&arm64, "linux", "aarch64", None, Some(EXACT)),
            (&v7, "linux", "arm", Some("v7"), Some(EXACT)),
            (&v7, "linux", "arm", None, Some(EXACT)),
            (&v7, "linux", "armhf", None, Some(EXACT)),
            (&v6, "linux", "armel", None, Some(EXACT)),
            // Compatible, ranked below exact.
            (&v7, "linux", "arm", Some("v6"), Some(EXACT - 1)),
            (&v7, "linux", "arm", Some("v5"), Some(EXACT - 2)),
            (&v6, "linux", "arm", Some("v5"), Some(EXACT - 1)),
            (&amd64, "linux", "amd64", Some("v2"), Some(LOOSE - 2)),
            (&amd64, "linux", "amd64", Some("v3"), Some(LOOSE - 3)),
            (&amd64_v3, "linux", "amd64", Some("v3"), Some(EXACT)),
            (&amd64_v3, "linux", "amd64", Some("v2"), Some(EXACT - 1)),
            (&amd64_v3, "linux", "amd64", None, Some(EXACT - 2)),
            (&riscv, "linux", "riscv64", Some("rva23"), Some(LOOSE)),
            // Not runnable.
            (&v6, "linux", "arm", Some("v7"), None),
            (&v6, "linux", "arm", None, None),
            (&v7, "linux", "arm", Some("v8"), None),
            (&v7, "linux", "arm", Some("weird"), None),
            (&arm64, "linux", "arm64", Some("v9"), None),
            (&arm64, "linux", "arm64", Some("v8.2"), None),
            (&arm64, "linux", "arm", Some("v7"), None),
            (&amd64, "linux", "arm64", None, None),
            (&arm64, "linux", "amd64", None, None),
            (&amd64, "linux", "386", None, None),
            (&amd64, "windows", "amd64", None, None),
            (&amd64, "darwin", "amd64", None, None),
            (&amd64, "", "amd64", None, None),
            (&amd64, "linux", "amd64", Some("v5"), None),
            (&amd64_v3, "linux", "amd64", Some("v4"), None),
            (&amd64_v3, "linux", "amd64", Some("weird"), None),
            (
                &Platform::with_variant("linux", "riscv64", "a"),
                "linux",
                "riscv64",
                Some("b"),
                None,
            ),
        ];
        for &(target, os, arch, variant, want) in cases {
            assert_eq!(
                target.score(os, arch, variant),
                want,
                "{target} scoring {os}/{arch}/{variant:?}"
            );
        }
    }

    #[test]
    fn arm64_levels() {
        let v8_2 = Platform::with_variant("linux", "arm64", "v8.2");
        let v9 = Platform::with_variant("linux", "arm64", "v9");
        let v9_1 = Platform::with_variant("linux", "arm64", "v9.1");
        let s = |p: &Platform, v: &str| p.score("linux", "arm64", Some(v));
        assert_eq!(s(&v8_2, "v8.2"), Some(EXACT));
        assert!(s(&v8_2, "v8.1") > s(&v8_2, "v8"));
        assert!(s(&v8_2, "v8").is_some());
        assert_eq!(s(&v8_2, "v8.3"), None);
        assert_eq!(s(&v8_2, "v9"), None);
        assert!(s(&v9, "v8.5").is_some());
        assert_eq!(s(&v9, "v8.6"), None);
        assert!(s(&v9, "v8") < s(&v9, "v8.5"));
        // v9.0 sits between v8.5 and v8.6, so v8.6 is the closer level below v9.1.
        assert!(s(&v9_1, "v8.6") > s(&v9_1, "v9"));
        assert!(s(&v9_1, "v9") > s(&v9_1, "v8.5"));
        assert!(s(&v9_1, "v8.6").is_some());
        assert_eq!(s(&v9_1, "v9.2"), None);
        // The no-variant entry is v8 and runs everywhere.
        assert!(v9.score("linux", "arm64", None).is_some());
    }

    #[test]
    fn absurd_variants_do_not_overflow() {
        let huge = Platform::with_variant("linux", "arm", "v4294967295");
        assert_eq!(huge.score("linux", "arm", Some("v5")), Some(0));
        let huge64 = Platform::with_variant("linux", "arm64", "v9.4294967295");
        assert_eq!(huge64.score("linux", "arm64", Some("v8")), None);
        assert_eq!(
            huge64.score("linux", "arm64", Some("v9.4294967295")),
            Some(EXACT)
        );
        let amd = Platform::with_variant("linux", "amd64", "v99999999999");
        assert_eq!(amd.score("linux", "amd64", None), None);
    }

    /// The best entry of a realistic index for each target.
    #[test]
    fn picks_the_best_index_entry() {
        let index: &[(&str, &str, Option<&str>)] = &[
            ("linux", "amd64", None),
            ("linux", "amd64", Some("v3")),
            ("linux", "arm", Some("v5")),
            ("linux", "arm", Some("v6")),
            ("linux", "arm", Some("v7")),
            ("linux", "arm64", Some("v8")),
            ("linux", "386", None),
            ("linux", "s390x", None),
            ("windows", "amd64", None),
            ("unknown", "unknown", None),
        ];
        let best = |target: &Platform| {
            index
                .iter()
                .filter_map(|e| target.score(e.0, e.1, e.2).map(|s| (s, e)))
                .max_by_key(|(s, _)| *s)
                .map(|(_, e)| *e)
        };
        assert_eq!(
            best(&Platform::new("linux", "amd64")),
            Some(("linux", "amd64", None))
        );
        assert_eq!(
            best(&Platform::with_variant("linux", "amd64", "v4")),
            Some(("linux", "amd64", Some("v3")))
        );
        assert_eq!(
            best(&Platform::new("linux", "arm")),
            Some(("linux", "arm", Some("v7")))
        );
        assert_eq!(
            best(&Platform::with_variant("linux", "arm", "v6")),
            Some(("linux", "arm", Some("v6")))
        );
        assert_eq!(
            best(&Platform::new("linux", "aarch64")),
            Some(("linux", "arm64", Some("v8")))
        );
        assert_eq!(best(&Platform::new("linux", "riscv64")), None);
    }

    #[test]
    fn parses_cli_strings() {
        let ok: &[(&str, &str)] = &[
            ("linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("Linux/AMD64", "linux/amd64"),
            ("linux/amd64/v3", "linux/amd64/v3"),
            ("linux/amd64/v1", "linux/amd64"),
            ("linux/arm64", "linux/arm64/v8"),
            ("linux/arm64/v8", "linux/arm64/v8"),
            ("linux/aarch64", "linux/arm64/v8"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/v6", "linux/arm/v6"),
            ("linux/arm/7", "linux/arm/v7"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/i686", "linux/386"),
            ("linux/riscv64", "linux/riscv64"),
            ("linux/s390x", "linux/s390x"),
            ("linux/ppc64le", "linux/ppc64le"),
            ("linux/loongarch64", "linux/loong64"),
            ("windows/amd64", "windows/amd64"),
        ];
        for &(input, display) in ok {
            let p: Platform = input
                .parse()
                .unwrap_or_else(|e| panic!("{input:?} failed: {e}"));
            assert_eq!(p.to_string(), display, "{input:?}");
            let again: Platform = display.parse().unwrap();
            assert_eq!(again, p, "round trip of {display:?}");
        }

        let bad: &[(&str, PlatformParseError)] = &[
            ("", PlatformParseError::Empty),
            ("linux", wrong("linux", 1)),
            ("amd64", wrong("amd64", 1)),
            ("linux/arm/v7/x", wrong("linux/arm/v7/x", 4)),
            ("linux//", empty("linux//", "architecture")),
            ("linux/", empty("linux/", "architecture")),
            ("/amd64", empty("/amd64", "os")),
            ("linux/arm/", empty("linux/arm/", "variant")),
            ("/", empty("/", "os")),
            ("linux/amd 64", chars("linux/amd 64", "architecture")),
            (" linux/amd64", chars(" linux/amd64", "os")),
            ("linux/arm/v7!", chars("linux/arm/v7!", "variant")),
            ("linux:amd64", wrong("linux:amd64", 1)),
        ];
        for (input, want) in bad {
            let e = input.parse::<Platform>().unwrap_err();
            assert_eq!(&e, want, "{input:?}");
            if !input.is_empty() {
                assert!(e.to_string().contains(&format!("{input:?}")), "{e}");
            }
        }
    }

    fn wrong(input: &str, parts: usize) -> PlatformParseError {
        PlatformParseError::WrongPartCount {
            input: input.to_owned(),
            parts,
        }
    }

    fn empty(input: &str, part: &'static str) -> PlatformParseError {
        PlatformParseError::EmptyPart {
            input: input.to_owned(),
            part,
        }
    }

    fn chars(input: &str, part: &'static str) -> PlatformParseError {
        PlatformParseError::InvalidCharacters {
            input: input.to_owned(),
            part,
        }
    }

    #[test]
    fn display_round_trips() {
        for p in [
            Platform::new("linux", "amd64"),
            Platform::new("linux", "arm64"),
            Platform::new("linux", "armel"),
            Platform::with_variant("linux", "amd64", "v2"),
            Platform::with_variant("linux", "arm64", "v9.1"),
            Platform::new("linux", "s390x"),
            Platform::host_linux(),
        ] {
            assert_eq!(p.to_string().parse::<Platform>().unwrap(), p, "{p}");
        }
    }

    #[test]
    fn host_linux_matches_this_machine() {
        let host = Platform::host_linux();
        assert_eq!(host.os(), "linux");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(host.to_string(), "linux/amd64");
        #[cfg(target_arch = "aarch64")]
        assert_eq!(host.to_string(), "linux/arm64/v8");
        // The host always runs an image built exactly for it.
        assert_eq!(
            host.score("linux", host.architecture(), host.variant()),
            Some(EXACT)
        );
    }

    #[test]
    fn serde_round_trip_as_display_string() {
        let p = Platform::new("linux", "aarch64");
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, "\"linux/arm64/v8\"");
        assert_eq!(serde_json::from_str::<Platform>(&json).unwrap(), p);
        assert_eq!(
            serde_json::from_str::<Platform>("\"linux/x86_64\"").unwrap(),
            Platform::new("linux", "amd64")
        );
        let e = serde_json::from_str::<Platform>("\"linux\"").unwrap_err();
        assert!(e.to_string().contains("expected os/arch"), "{e}");
    }
}
