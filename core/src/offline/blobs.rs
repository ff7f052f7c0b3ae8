//! Where the files of an offline image are: a directory (an OCI layout) or the members of a
//! tar (a docker archive, which may hold an OCI layout too). Names are relative and built by
//! this crate (`index.json`, `blobs/<alg>/<hex>` from a parsed digest, or a docker
//! `manifest.json`'s member names, looked up in the member table only). In a directory every
//! component is opened with `O_NOFOLLOW` beneath the directory's descriptor and the file must
//! be a regular file, so no symlink in the layout can lead a read outside it and no FIFO can
//! block it.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::SourceError;
use super::members::TarMembers;
use crate::digest::Digest;

/// The files of an offline image.
#[derive(Debug)]
pub(crate) enum Blobs {
    /// A directory, by its descriptor.
    Dir { root: PathBuf, fd: OwnedFd },
    /// The members of a tar.
    Tar(TarMembers),
}

/// An open file of a [`Blobs`].
pub(crate) type BlobReader = Box<dyn Read + Send>;

impl Blobs {
    /// Opens the directory `root`.
    pub fn dir(root: &Path) -> Result<Blobs, SourceError> {
        let fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| SourceError::io("open", root, e.into()))?;
        Ok(Blobs::Dir {
            root: root.to_owned(),
            fd,
        })
    }

    /// The path of a blob: `blobs/<alg>/<hex>`.
    pub fn blob_name(digest: &Digest) -> String {
        format!("blobs/{}/{}", digest.algorithm().as_str(), digest.hex())
    }

    /// How `name` is named in messages.
    pub fn display(&self, name: &str) -> PathBuf {
        match self {
            Blobs::Dir { root, .. } => root.join(name),
            Blobs::Tar(t) => t.display(name),
        }
    }

    /// The directory or archive.
    pub fn root(&self) -> &Path {
        match self {
            Blobs::Dir { root, .. } => root,
            Blobs::Tar(t) => t.path(),
        }
    }

    /// Whether `name` exists (as something [`open`](Self::open) would read).
    pub fn contains(&self, name: &str) -> bool {
        match self {
            Blobs::Dir { .. } => self.open(name).is_ok(),
            Blobs::Tar(t) => t.contains(name),
        }
    }

    /// Opens `name`: a reader and the file's size.
    pub fn open(&self, name: &str) -> Result<(BlobReader, u64), SourceError> {
        match self {
            Blobs::Tar(t) => {
                let (reader, size) = t.open(name)?;
                Ok((Box::new(reader), size))
            }
            Blobs::Dir { fd, .. } => {
                let file = self.open_beneath(fd, name)?;
                let size = file
                    .metadata()
                    .map_err(|e| SourceError::io("stat", self.display(name), e))?
                    .len();
                Ok((Box::new(file), size))
            }
        }
    }

    fn open_beneath(&self, root: &OwnedFd, name: &str) -> Result<File, SourceError> {
        let path = self.display(name);
        let fail = |e: rustix::io::Errno| {
            if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
                SourceError::Unsafe {
                    path: path.clone(),
                    reason: "a symlink or non-directory on the way (layouts are read without \
                             following symlinks)"
                        .into(),
                }
            } else {
                SourceError::io("open", path.clone(), e.into())
            }
        };
        let components: Vec<&str> = name.split('/').collect();
        let mut dir: Option<OwnedFd> = None;
        for (i, component) in components.iter().enumerate() {
            if component.is_empty() || *component == "." || *component == ".." {
                return Err(SourceError::Unsafe {
                    path,
                    reason: "not a plain relative name".into(),
                });
            }
            let last = i + 1 == components.len();
            let flags = OFlags::RDONLY
                | OFlags::NOFOLLOW
                | OFlags::CLOEXEC
                | if last {
                    OFlags::NONBLOCK
                } else {
                    OFlags::DIRECTORY
                };
            let at = dir.as_ref().unwrap_or(root);
            dir = Some(rustix::fs::openat(at, *component, flags, Mode::empty()).map_err(fail)?);
        }
        let fd = dir.ok_or_else(|| SourceError::Unsafe {
            path: path.clone(),
            reason: "empty name".into(),
        })?;
        let stat = rustix::fs::fstat(&fd).map_err(fail)?;
        if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(SourceError::Unsafe {
                path,
                reason: "not a regular file".into(),
            });
        }
        // Back to blocking reads (O_NONBLOCK only kept a FIFO from blocking the open).
        rustix::fs::fcntl_setfl(&fd, OFlags::empty()).map_err(fail)?;
        Ok(File::from(fd))
    }

    /// Reads all of `name`, refusing more than `limit` bytes.
    pub fn read_small(&self, name: &str, limit: u64) -> Result<Vec<u8>, SourceError> {
        let (reader, size) = self.open(name)?;
        if size > limit {
            return Err(SourceError::TooLarge {
                path: self.display(name),
                limit,
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| SourceError::io("read", self.display(name), e))?;
        Ok(bytes)
    }

    /// Reads `name` whole (at most `limit` bytes) and checks it against `digest` (and
    /// `expected_size` when given).
    pub fn read_verified(
        &self,
        name: &str,
        digest: &Digest,
        expected_size: Option<u64>,
        limit: u64,
    ) -> Result<Vec<u8>, SourceError> {
        let bytes = self
            .read_small(name, limit)
            .map_err(|e| missing_as_blob(e, digest))?;
        if let Some(expected) = expected_size
            && bytes.len() as u64 != expected
        {
            return Err(SourceError::SizeMismatch {
                path: self.display(name),
                size: bytes.len() as u64,
                expected,
            });
        }
        let mut h = digest.hasher();
        h.update(&bytes);
        let actual = h.finish();
        if &actual != digest {
            return Err(SourceError::DigestMismatch {
                path: self.display(name),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }
}

/// A blob that is not there, named as such.
pub(crate) fn missing_as_blob(e: SourceError, digest: &Digest) -> SourceError {
    match e {
        SourceError::Io { path, source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            SourceError::MissingBlob {
                path,
                digest: digest.clone(),
            }
        }
        e => e,
    }
}
