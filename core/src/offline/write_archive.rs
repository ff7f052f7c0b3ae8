//! Writing a `docker save`-style archive: `<config hex>.json`, one uncompressed
//! `<diff_id hex>.tar` per layer, `manifest.json` and `repositories`, as docker, podman and
//! skopeo read it. Layers are streamed (inflated on the way) without knowing their size in
//! advance: each member's header is written as a placeholder and rewritten once its data is
//! in. Everything goes to a temp file beside the target, renamed over it only when complete.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::SourceError;

const BLOCK: u64 = 512;

/// An archive being written.
pub(crate) struct ArchiveWriter {
    target: PathBuf,
    tmp: PathBuf,
    file: File,
    done: bool,
}

impl ArchiveWriter {
    /// Starts writing `target` (through a temp file beside it).
    pub fn create(target: &Path) -> Result<ArchiveWriter, SourceError> {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| SourceError::Invalid {
                input: target.display().to_string(),
                reason: "not a file name".into(),
            })?;
        let tmp = target.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let file = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| SourceError::io("create", &tmp, e))?;
        Ok(ArchiveWriter {
            target: target.to_owned(),
            tmp,
            file,
            done: false,
        })
    }

    fn io(&self, op: &'static str) -> impl Fn(std::io::Error) -> SourceError + '_ {
        move |e| SourceError::io(op, &self.tmp, e)
    }

    /// Adds member `name` with `bytes`.
    pub fn add(&mut self, name: &str, bytes: &[u8]) -> Result<(), SourceError> {
        match self.add_stream(name, bytes) {
            Ok(_) => Ok(()),
            Err(StreamError::Write(e)) => Err(e),
            Err(StreamError::Read(e)) => Err(SourceError::io("read", name, e)),
        }
    }

    /// Adds member `name` with everything `reader` gives; returns its size. The reader's
    /// errors come back as they are (the caller knows what they mean).
    pub fn add_stream(&mut self, name: &str, mut reader: impl Read) -> Result<u64, StreamError> {
        let start = self.file.stream_position().map_err(self.io("seek"))?;
        self.file
            .write_all(&[0u8; BLOCK as usize])
            .map_err(self.io("write"))?;
        let mut size = 0u64;
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StreamError::Read(e)),
            };
            self.file.write_all(&buf[..n]).map_err(self.io("write"))?;
            size += n as u64;
        }
        let pad = (BLOCK - size % BLOCK) % BLOCK;
        self.file
            .write_all(&vec![0u8; pad as usize])
            .map_err(self.io("write"))?;
        let end = self.file.stream_position().map_err(self.io("seek"))?;
        let header = header(name, size).map_err(|e| SourceError::malformed(&self.target, e))?;
        self.file
            .seek(SeekFrom::Start(start))
            .map_err(self.io("seek"))?;
        self.file
            .write_all(header.as_bytes())
            .map_err(self.io("write"))?;
        self.file
            .seek(SeekFrom::Start(end))
            .map_err(self.io("seek"))?;
        Ok(size)
    }

    /// Ends the archive and renames it over the target.
    pub fn finish(mut self) -> Result<u64, SourceError> {
        self.file
            .write_all(&[0u8; 2 * BLOCK as usize])
            .map_err(self.io("write"))?;
        self.file.sync_all().map_err(self.io("sync"))?;
        let len = self.file.stream_position().map_err(self.io("seek"))?;
        std::fs::rename(&self.tmp, &self.target)
            .map_err(|e| SourceError::io("rename", &self.target, e))?;
        self.done = true;
        Ok(len)
    }
}

impl Drop for ArchiveWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Why [`ArchiveWriter::add_stream`] stopped.
#[derive(Debug)]
pub(crate) enum StreamError {
    /// The reader failed.
    Read(std::io::Error),
    /// Writing the archive failed.
    Write(SourceError),
}

impl From<SourceError> for StreamError {
    fn from(e: SourceError) -> Self {
        StreamError::Write(e)
    }
}

fn header(name: &str, size: u64) -> std::io::Result<tar::Header> {
    let mut h = tar::Header::new_gnu();
    h.set_path(name)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}
