//! Image records: what a completed pull of one reference for one platform produced. A record
//! is written atomically after every layer it names is published, so a record whose layers
//! all exist is a complete image.
//!
//! Records are read strictly: at most [`MAX_RECORD_BYTES`], no unknown fields, the version
//! this build writes, and a file name that matches the reference and platform inside, so a
//! truncated, hostile or misplaced record is a cache miss, never a wrong image. A record's
//! modification time is the image's last use: a warm pull moves it forward when it is older
//! than [`LAST_USE_GRANULARITY`] (one `futimens`, not a write per pull).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::digest::Digest;

/// Records larger than this are not read (a record of 10,000 layers is about 2.5 MB).
pub(crate) const MAX_RECORD_BYTES: u64 = 4 << 20;

/// How stale a record's last-use time may be before a warm pull moves it forward.
pub(crate) const LAST_USE_GRANULARITY: Duration = Duration::from_secs(300);

/// Format version of image records; records of another version are ignored (re-pulled).
pub(crate) const RECORD_VERSION: u32 = 1;

/// One layer of a recorded image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordLayer {
    /// Compressed digest from the manifest.
    pub digest: Digest,
    /// Uncompressed digest: the cache key.
    pub diff_id: Digest,
    /// Compressed size.
    pub size: u64,
}

/// The record of a pulled image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImageRecord {
    pub version: u32,
    /// Normalised reference as pulled.
    pub reference: String,
    /// Target platform of the pull.
    pub platform: String,
    /// The platform manifest.
    pub manifest_digest: Digest,
    /// The index the manifest was chosen from, if any.
    pub index_digest: Option<Digest>,
    /// The config blob (its bytes are under `manifests/`).
    pub config_digest: Digest,
    /// Layers bottom to top.
    pub layers: Vec<RecordLayer>,
    /// Seconds since the epoch when the record was written.
    pub pulled_at: u64,
}

/// The record file name for a reference pulled for a platform: the SHA-256 of both, so the
/// same tag pulled for two platforms keeps two records.
pub(crate) fn record_key(reference: &str, platform: &str) -> String {
    Digest::sha256_of(format!("{reference}\n{platform}").as_bytes())
        .hex()
        .to_owned()
}

/// A record as read from disk, with its last use.
#[derive(Debug, Clone)]
pub(crate) struct StoredRecord {
    pub record: ImageRecord,
    /// The record file's modification time.
    pub last_used: SystemTime,
}

/// Open a record file without following a symlink at its name (blocking).
fn open_record(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

/// Read and check the record at `path`, stored under `key` (blocking). `None` for anything
/// that is not a whole, valid record of this version under its own key.
pub(crate) fn read_record_file(path: &Path, key: &str) -> Option<StoredRecord> {
    let file = open_record(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_RECORD_BYTES {
        return None;
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_RECORD_BYTES + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    let record: ImageRecord = serde_json::from_slice(&bytes).ok()?;
    let valid =
        record.version == RECORD_VERSION && record_key(&record.reference, &record.platform) == key;
    valid.then(|| StoredRecord {
        record,
        last_used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    })
}

/// Move a record's last use to now when it is older than [`LAST_USE_GRANULARITY`] (blocking;
/// best effort: a reader without write access leaves it).
pub(crate) fn touch_record(path: &Path, last_used: SystemTime) {
    let stale = SystemTime::now()
        .duration_since(last_used)
        .is_ok_and(|age| age >= LAST_USE_GRANULARITY);
    if stale && let Ok(file) = open_record(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(reference: &str) -> ImageRecord {
        ImageRecord {
            version: RECORD_VERSION,
            reference: reference.into(),
            platform: "linux/amd64".into(),
            manifest_digest: Digest::sha256_of(b"m"),
            index_digest: None,
            config_digest: Digest::sha256_of(b"c"),
            layers: vec![RecordLayer {
                digest: Digest::sha256_of(b"blob"),
                diff_id: Digest::sha256_of(b"tar"),
                size: 3,
            }],
            pulled_at: 1,
        }
    }

    #[test]
    fn only_a_whole_record_under_its_own_key_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let rec = record("docker.io/library/a:1");
        let key = record_key(&rec.reference, &rec.platform);
        let path = dir.path().join(format!("{key}.json"));
        let bytes = serde_json::to_vec(&rec).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_record_file(&path, &key).unwrap().record, rec);
        // Under another key (a record copied over another image's name).
        assert!(
            read_record_file(&path, &record_key("docker.io/library/b:1", "linux/amd64")).is_none()
        );
        // Torn, padded with an unknown field, or another version.
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(read_record_file(&path, &key).is_none());
        let mut v: serde_json::Value = serde_json::to_value(&rec).unwrap();
        v["extra"] = 1.into();
        std::fs::write(&path, v.to_string()).unwrap();
        assert!(read_record_file(&path, &key).is_none());
        let mut other = rec.clone();
        other.version = RECORD_VERSION + 1;
        std::fs::write(&path, serde_json::to_vec(&other).unwrap()).unwrap();
        assert!(read_record_file(&path, &key).is_none());
        // A symlink at the record's name is not followed.
        let real = dir.path().join("real.json");
        std::fs::write(&real, &bytes).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&real, &path).unwrap();
        assert!(read_record_file(&path, &key).is_none());
    }

    #[test]
    fn last_use_moves_only_when_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, b"{}").unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let fresh = SystemTime::now() - Duration::from_secs(10);
        touch_record(&path, fresh);
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert!(mtime < fresh, "a recent last use is not written again");
        touch_record(&path, old);
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert!(mtime > fresh);
    }
}
