//! Our own configuration file: [`RegistryConfig`] as TOML, the same keys as its JSON form
//! (`insecureRegistries = ["localhost:5000"]`, `[mirrors]`, `[limits]`), at
//! `$MSBIMAGE_CONFIG`, else `$XDG_CONFIG_HOME/msbimage/config.toml` (default
//! `~/.config/msbimage/config.toml`). The CLI reads it when it exists; the library only when
//! asked ([`RegistryConfig::merge_toml_file`]).

use std::path::{Path, PathBuf};

use super::{read_text, toml_error};
use crate::error::Error;
use crate::settings::RegistryConfig;

/// Where our configuration file is looked for: `$MSBIMAGE_CONFIG`, else
/// `$XDG_CONFIG_HOME/msbimage/config.toml`, else `~/.config/msbimage/config.toml` (`None`
/// when neither variable nor `HOME` is set).
pub fn default_config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MSBIMAGE_CONFIG").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    super::home_config_dir().map(|d| d.join("msbimage/config.toml"))
}

impl RegistryConfig {
    /// Reads settings from TOML, on top of the defaults. Unknown keys are an error naming
    /// them and their line.
    ///
    /// ```
    /// use microsandbox_image::RegistryConfig;
    /// let c = RegistryConfig::from_toml("concurrency = 8\n[mirrors]\n\"docker.io\" = [\"mirror.local\"]\n")?;
    /// assert_eq!(c.concurrency, 8);
    /// assert_eq!(c.mirrors["docker.io"], ["mirror.local"]);
    /// # Ok::<(), toml::de::Error>(())
    /// ```
    pub fn from_toml(text: &str) -> Result<RegistryConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// Applies the keys of the TOML file at `path` onto these settings, leaving the others as
    /// they are. A malformed file or an unknown key is an error naming the file and the line.
    pub fn merge_toml_file(&mut self, path: &Path) -> Result<(), Error> {
        let text = read_text(path)?;
        // Parsed whole first, for errors with their line; then merged key by key.
        RegistryConfig::from_toml(&text).map_err(|e| toml_error(path, e))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| toml_error(path, e))?;
        let json = serde_json::to_string(&table)
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))?;
        self.merge_json(&json)
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_is_the_json_form() {
        let c = RegistryConfig::from_toml(
            "insecureRegistries = [\"localhost:5000\"]\nconnectTimeout = 2\nregistriesConf = [\"/r.conf\"]\n[limits]\nmaxEntries = 7\n",
        )
        .unwrap();
        assert_eq!(c.insecure_registries, ["localhost:5000"]);
        assert_eq!(c.connect_timeout, std::time::Duration::from_secs(2));
        assert_eq!(c.registries_conf, [PathBuf::from("/r.conf")]);
        assert_eq!(c.limits.max_entries, 7);
    }

    #[test]
    fn merging_a_file_keeps_other_settings_and_names_mistakes() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("config.toml");
        std::fs::write(&path, "durable = false\nconcurrency = 3\n").unwrap();
        let mut c = RegistryConfig {
            max_retries: 9,
            ..RegistryConfig::default()
        };
        c.merge_toml_file(&path).unwrap();
        assert_eq!((c.max_retries, c.concurrency, c.durable), (9, 3, false));
        std::fs::write(&path, "durable = false\n\nconcurency = 3\n").unwrap();
        let err = c.merge_toml_file(&path).unwrap_err().to_string();
        assert!(err.contains("config.toml"), "{err}");
        assert!(
            err.contains("concurency") && err.contains("line 3"),
            "{err}"
        );
    }
}
