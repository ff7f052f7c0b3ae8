//! Gzip (RFC 1952) members inflated one after another, their CRC-32 not computed. A layer's
//! integrity rests on the blob's digest (every compressed byte) and the diff_id (every
//! inflated byte), both checked before anything is published; the CRC-32 adds nothing to
//! them and cost about 2 % of a pull's CPU. Everything else of the format is checked: the
//! magic, method and flags of each header, the deflate stream, a complete trailer whose
//! length field matches what the member inflated to, and nothing after the last member but
//! another member.

use std::io::{self, BufRead, Read};

use flate2::{Decompress, FlushDecompress, Status};

/// The two bytes every member starts with.
const MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The only compression method gzip defines (deflate).
const DEFLATE: u8 = 8;
/// Header flags (RFC 1952, 2.3.1).
const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;
/// Flag bits the format reserves (must be zero).
const RESERVED: u8 = 0b1110_0000;

/// Where the reader is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a member's header (the first, or one after a trailer).
    Header { first: bool },
    /// Inside a member's deflate stream.
    Body,
    /// After the last member.
    Done,
}

/// A `Read` of the inflated bytes of every member of a gzip stream.
pub(crate) struct GzipMembers<R> {
    inner: R,
    inflate: Decompress,
    state: State,
    /// Bytes the current member has inflated to (its trailer holds this modulo 2^32).
    member_out: u64,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn truncated(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("gzip stream ends inside {what}"),
    )
}

impl<R: BufRead> GzipMembers<R> {
    /// Inflate the gzip stream `inner` (its first member's header is read on the first read).
    pub(crate) fn new(inner: R) -> Self {
        GzipMembers {
            inner,
            inflate: Decompress::new(false),
            state: State::Header { first: true },
            member_out: 0,
        }
    }

    /// The source, positioned after what was consumed.
    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    fn read_exact_or(&mut self, buf: &mut [u8], what: &str) -> io::Result<()> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => truncated(what),
            _ => e,
        })
    }

    /// Skip a zero-terminated header field.
    fn skip_zero_terminated(&mut self, what: &str) -> io::Result<()> {
        let mut ended = false;
        while !ended {
            let available = self.inner.fill_buf()?;
            if available.is_empty() {
                return Err(truncated(what));
            }
            let (used, found) = match available.iter().position(|&b| b == 0) {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            self.inner.consume(used);
            ended = found;
        }
        Ok(())
    }

    /// Read a member's header. `false` when the stream ends cleanly where a later member could
    /// have started.
    fn header(&mut self, first: bool) -> io::Result<bool> {
        if !first && self.inner.fill_buf()?.is_empty() {
            return Ok(false);
        }
        let mut fixed = [0u8; 10];
        self.read_exact_or(&mut fixed, "a member header")?;
        if fixed[..2] != MAGIC {
            return Err(invalid(if first {
                "not a gzip stream (bad magic bytes)"
            } else {
                "bytes after a gzip member that are not another member"
            }));
        }
        if fixed[2] != DEFLATE {
            return Err(invalid(format!(
                "unknown gzip compression method {}",
                fixed[2]
            )));
        }
        let flags = fixed[3];
        if flags & RESERVED != 0 {
            return Err(invalid(format!(
                "reserved gzip header flags set ({flags:#04x})"
            )));
        }
        if flags & FEXTRA != 0 {
            let mut len = [0u8; 2];
            self.read_exact_or(&mut len, "a member header's extra field")?;
            let len = u16::from_le_bytes(len) as u64;
            let skipped = io::copy(&mut (&mut self.inner).take(len), &mut io::sink())?;
            if skipped != len {
                return Err(truncated("a member header's extra field"));
            }
        }
        if flags & FNAME != 0 {
            self.skip_zero_terminated("a member header's file name")?;
        }
        if flags & FCOMMENT != 0 {
            self.skip_zero_terminated("a member header's comment")?;
        }
        if flags & FHCRC != 0 {
            self.read_exact_or(&mut [0u8; 2], "a member header's CRC")?;
        }
        Ok(true)
    }

    /// Read a member's trailer and check its length field.
    fn trailer(&mut self) -> io::Result<()> {
        let mut trailer = [0u8; 8];
        self.read_exact_or(&mut trailer, "a member trailer")?;
        let isize = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        // The field holds the length modulo 2^32: the truncation is the format's.
        let expected = self.member_out as u32;
        if isize != expected {
            return Err(invalid(format!(
                "gzip member length field says {isize} bytes, it inflated to {} (mod 2^32: {expected})",
                self.member_out
            )));
        }
        Ok(())
    }

    /// Inflate into `buf` from the current member; `Ok(0)` only when the member ended.
    fn body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let input = self.inner.fill_buf()?;
            let at_eof = input.is_empty();
            let (in_before, out_before) = (self.inflate.total_in(), self.inflate.total_out());
            let status = self
                .inflate
                .decompress(input, buf, FlushDecompress::None)
                .map_err(|e| invalid(format!("corrupt deflate stream: {e}")))?;
            let used = usize::try_from(self.inflate.total_in() - in_before)
                .map_err(|_| invalid("inflate consumed more than it was given"))?;
            let made = usize::try_from(self.inflate.total_out() - out_before)
                .map_err(|_| invalid("inflate produced more than it had room for"))?;
            self.inner.consume(used);
            self.member_out += made as u64;
            if status == Status::StreamEnd {
                self.trailer()?;
                self.state = State::Header { first: false };
                return Ok(made);
            }
            if made > 0 || buf.is_empty() {
                return Ok(made);
            }
            if at_eof {
                return Err(truncated("a deflate stream"));
            }
            if used == 0 {
                return Err(invalid("inflate made no progress on its input"));
            }
        }
    }
}

impl<R: BufRead> Read for GzipMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Header { first } => {
                    if self.header(first)? {
                        self.inflate.reset(false);
                        self.member_out = 0;
                        self.state = State::Body;
                    } else {
                        self.state = State::Done;
                    }
                }
                State::Body => {
                    let made = self.body(buf)?;
                    if made > 0 || buf.is_empty() {
                        return Ok(made);
                    }
                }
            }
        }
    }
}

/// `data` as one gzip member (for tests).
#[cfg(test)]
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn inflate(blob: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        // A small buffer, so fields and trailers straddle refills.
        GzipMembers::new(io::BufReader::with_capacity(7, blob)).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn inflates_one_member_and_several() {
        let a = b"first member ".repeat(5000);
        let b = b"second".repeat(3);
        assert_eq!(inflate(&gzip(&a)).unwrap(), a);
        let two = [gzip(&a), gzip(&b), gzip(b"")].concat();
        assert_eq!(inflate(&two).unwrap(), [&a[..], &b[..]].concat());
    }

    #[test]
    fn skips_every_optional_header_field() {
        let data = b"named".repeat(100);
        let mut gz = flate2::GzBuilder::new()
            .filename("layer.tar")
            .comment("a comment")
            .extra(vec![1, 2, 3, 4])
            .write(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        let mut blob = gz.finish().unwrap();
        assert_eq!(inflate(&blob).unwrap(), data);
        // The same with a header CRC: the flag set and two bytes after the comment.
        blob[3] |= FHCRC;
        let end = 10 + 2 + 4 + b"layer.tar\0a comment\0".len();
        blob.splice(end..end, [0xaa, 0xbb]);
        assert_eq!(inflate(&blob).unwrap(), data);
    }

    #[test]
    fn refuses_what_is_not_a_whole_gzip_stream() {
        let data = b"payload".repeat(1000);
        let good = gzip(&data);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("not gzip", b"plain tar bytes".to_vec()),
            ("cut in the header", good[..5].to_vec()),
            ("cut in the body", good[..good.len() / 2].to_vec()),
            ("cut in the trailer", good[..good.len() - 3].to_vec()),
            ("garbage after", [&good[..], b"junk"].concat()),
            ("method", {
                let mut b = good.clone();
                b[2] = 7;
                b
            }),
            ("reserved flag", {
                let mut b = good.clone();
                b[3] |= 0x20;
                b
            }),
            ("length field", {
                let mut b = good.clone();
                let n = b.len();
                b[n - 1] ^= 1;
                b
            }),
            ("name never ends", {
                let mut b = good[..10].to_vec();
                b[3] |= FNAME;
                b.extend_from_slice(b"no terminator");
                b
            }),
        ];
        for (what, blob) in cases {
            assert!(inflate(&blob).is_err(), "{what} was accepted");
        }
    }

    #[test]
    fn a_wrong_crc_alone_is_not_checked() {
        // The blob digest and the diff_id cover it; the length field is still checked.
        let data = b"crc".repeat(400);
        let mut blob = gzip(&data);
        let n = blob.len();
        blob[n - 8] ^= 0xff;
        assert_eq!(inflate(&blob).unwrap(), data);
    }

    #[test]
    fn hands_back_the_source_after_the_last_member() {
        let blob = gzip(b"abc");
        let mut r = GzipMembers::new(&blob[..]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert!(r.into_inner().is_empty());
    }
}
