//! Decompression of a layer stream: gzip (zlib-rs backend, [`GzipMembers`]), zstd, or none;
//! chosen by media type, or by magic bytes when the media type says nothing. The decoder hands
//! its input back at the end so the caller can finish hashing the compressed stream.

use std::io::{BufRead, BufReader, Read};

use super::gzip::GzipMembers;
use crate::manifest::Compression;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Input buffer of the decoders.
const BUF: usize = 256 * 1024;

/// A decoder over a buffered source.
pub(crate) enum Decoder<R: Read> {
    Plain(BufReader<R>),
    Gzip(GzipMembers<BufReader<R>>),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<R>>),
}

impl<R: Read> Decoder<R> {
    /// Wrap `source`, resolving [`Compression::Detect`] from the first bytes.
    pub(crate) fn new(source: R, compression: Compression) -> std::io::Result<Self> {
        let mut buf = BufReader::with_capacity(BUF, source);
        let kind = match compression {
            Compression::Detect => {
                let head = buf.fill_buf()?;
                if head.starts_with(&GZIP_MAGIC) {
                    Compression::Gzip
                } else if head.starts_with(&ZSTD_MAGIC) {
                    Compression::Zstd
                } else {
                    Compression::None
                }
            }
            c => c,
        };
        Ok(match kind {
            Compression::Gzip => Decoder::Gzip(GzipMembers::new(buf)),
            Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(buf)?),
            Compression::None | Compression::Detect => Decoder::Plain(buf),
        })
    }

    /// The buffered source, positioned after what the decoder consumed.
    pub(crate) fn into_inner(self) -> BufReader<R> {
        match self {
            Decoder::Plain(b) => b,
            Decoder::Gzip(d) => d.into_inner(),
            Decoder::Zstd(d) => d.finish(),
        }
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn roundtrip(blob: &[u8], c: Compression) -> Vec<u8> {
        let mut d = Decoder::new(blob, c).unwrap();
        let mut out = Vec::new();
        d.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn detects_by_magic_and_decodes() {
        let data = b"hello tar bytes".repeat(1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&data[..], 3).unwrap();
        for (blob, c) in [
            (&gz, Compression::Gzip),
            (&gz, Compression::Detect),
            (&zs, Compression::Zstd),
            (&zs, Compression::Detect),
            (&data, Compression::None),
            (&data, Compression::Detect),
        ] {
            assert_eq!(roundtrip(blob, c), data, "{c:?}");
        }
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&[7u8; 10_000]).unwrap();
        let gz = gz.finish().unwrap();
        let mut d = Decoder::new(&gz[..gz.len() / 2], Compression::Gzip).unwrap();
        assert!(d.read_to_end(&mut Vec::new()).is_err());
    }
}
