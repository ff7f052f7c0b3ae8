//! Multi-member gzip decoding with ISA-L's igzip (`isal_inflate`, streaming) over a
//! [`BufRead`], with the semantics of `flate2::bufread::MultiGzDecoder`: the gzip header is
//! parsed here exactly as flate2 parses it (magic, method 8, no reserved flags, FEXTRA, FNAME
//! and FCOMMENT up to 65535 bytes, FHCRC checked), ISA-L inflates the raw deflate body and
//! checks the trailer (CRC-32 and length), and after each member another one follows if any
//! input is left. Input is consumed exactly: after the last member, [`into_inner`] gives the
//! reader back positioned right after its trailer (ISA-L returns the unused bytes of its bit
//! buffer when it reads the trailer).
//!
//! One deliberate difference: an error is repeated on every later read, where flate2 answers
//! `Ok(0)` after reporting it once (a broken stream never turns into a clean end).
//!
//! [`into_inner`]: IsalGzDecoder::into_inner

use std::io::{self, BufRead, Read};

use isal_sys::igzip_lib as ffi;

/// RFC 1952 flags.
const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;
const FRESERVED: u8 = 0xe0;
/// flate2's limit on a header's file name and comment.
const MAX_HEADER_FIELD: usize = 65535;

enum Phase {
    /// Expecting a member's header.
    Header,
    /// Inflating a member's body (and checking its trailer).
    Body,
    /// A member ended: another follows if any input is left.
    MemberEnd,
    /// The last member ended.
    End,
    /// Broken; the error is repeated.
    Failed(io::ErrorKind, String),
}

/// A gzip decoder (all members) reading from `R`.
pub struct IsalGzDecoder<R> {
    inner: R,
    state: Box<ffi::inflate_state>,
    phase: Phase,
}

impl<R: BufRead> IsalGzDecoder<R> {
    /// A decoder over `inner`, which must start with a gzip header.
    pub fn new(inner: R) -> Self {
        // SAFETY: `inflate_state` is plain data (integers, arrays, raw pointers); all zero is
        // a valid value, and `isal_inflate_init` then sets it up.
        let mut state: Box<ffi::inflate_state> = unsafe { Box::new(std::mem::zeroed()) };
        // SAFETY: a valid, exclusively borrowed state.
        unsafe { ffi::isal_inflate_init(&mut *state) };
        IsalGzDecoder {
            inner,
            state,
            phase: Phase::Header,
        }
    }

    /// The reader, positioned after what the decoder consumed.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn fail(&mut self, e: io::Error) -> io::Error {
        self.phase = Phase::Failed(e.kind(), e.to_string());
        e
    }

    fn start_member(&mut self) -> io::Result<()> {
        read_header(&mut self.inner)?;
        // SAFETY: a valid, exclusively borrowed state.
        unsafe { ffi::isal_inflate_reset(&mut *self.state) };
        // Raw deflate, then the 8-byte gzip trailer, checked.
        self.state.crc_flag = ffi::ISAL_GZIP_NO_HDR_VER;
        Ok(())
    }

    /// One `isal_inflate` call over what the reader has buffered: (consumed, produced).
    fn step(&mut self, out: &mut [u8]) -> io::Result<(usize, usize, bool)> {
        let input = self.inner.fill_buf()?;
        let avail_in = input.len().min(u32::MAX as usize);
        let avail_out = out.len().min(u32::MAX as usize);
        let st = &mut *self.state;
        st.next_in = input.as_ptr().cast_mut();
        st.avail_in = avail_in as u32;
        st.next_out = out.as_mut_ptr();
        st.avail_out = avail_out as u32;
        // SAFETY: `next_in`/`avail_in` describe the reader's buffer, which isal_inflate only
        // reads; `next_out`/`avail_out` describe `out`; both outlive the call.
        let ret = unsafe { ffi::isal_inflate(st) };
        let consumed = avail_in - st.avail_in as usize;
        let produced = avail_out - st.avail_out as usize;
        st.next_in = std::ptr::null_mut();
        st.next_out = std::ptr::null_mut();
        self.inner.consume(consumed);
        if ret < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                if ret == ffi::ISAL_INCORRECT_CHECKSUM {
                    "corrupt gzip stream does not have a matching checksum"
                } else {
                    "corrupt deflate stream"
                },
            ));
        }
        Ok((consumed, produced, avail_in == 0))
    }
}

impl<R: BufRead> Read for IsalGzDecoder<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match &self.phase {
                Phase::Failed(kind, msg) => return Err(io::Error::new(*kind, msg.clone())),
                Phase::End => return Ok(0),
                Phase::Header => match self.start_member() {
                    Ok(()) => self.phase = Phase::Body,
                    Err(e) => return Err(self.fail(e)),
                },
                Phase::MemberEnd => match self.inner.fill_buf() {
                    Ok([]) => self.phase = Phase::End,
                    Ok(_) => self.phase = Phase::Header,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(self.fail(e)),
                },
                Phase::Body => {
                    let (consumed, produced, eof) = match self.step(out) {
                        Ok(v) => v,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(self.fail(e)),
                    };
                    if self.state.block_state == ffi::isal_block_state_ISAL_BLOCK_FINISH {
                        self.phase = Phase::MemberEnd;
                    }
                    if produced > 0 {
                        return Ok(produced);
                    }
                    if consumed == 0 && !matches!(self.phase, Phase::MemberEnd) {
                        // No output, no input taken, not finished: at the end of the input
                        // the stream is truncated; otherwise isal_inflate is stuck (it should
                        // not be: it always takes what it is given).
                        let e = if eof {
                            io::Error::from(io::ErrorKind::UnexpectedEof)
                        } else {
                            io::Error::new(io::ErrorKind::InvalidInput, "corrupt deflate stream")
                        };
                        return Err(self.fail(e));
                    }
                }
            }
        }
    }
}

/// Reads and checks one gzip member header, as flate2 does.
fn read_header<R: BufRead>(r: &mut R) -> io::Result<()> {
    let bad = || io::Error::new(io::ErrorKind::InvalidInput, "invalid gzip header");
    let mut base = [0u8; 10];
    r.read_exact(&mut base)?;
    if base[0] != 0x1f || base[1] != 0x8b || base[2] != 8 {
        return Err(bad());
    }
    let flags = base[3];
    if flags & FRESERVED != 0 {
        return Err(bad());
    }
    let mut crc = (flags & FHCRC != 0).then(flate2::Crc::new);
    let mut hash = |b: &[u8]| {
        if let Some(c) = crc.as_mut() {
            c.update(b);
        }
    };
    hash(&base);
    if flags & FEXTRA != 0 {
        let mut xlen = [0u8; 2];
        r.read_exact(&mut xlen)?;
        hash(&xlen);
        let mut extra = vec![0u8; u16::from_le_bytes(xlen) as usize];
        r.read_exact(&mut extra)?;
        hash(&extra);
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let mut field = Vec::new();
            r.by_ref()
                .take(MAX_HEADER_FIELD as u64 + 1)
                .read_until(0, &mut field)?;
            match field.last() {
                Some(0) => {}
                _ if field.len() > MAX_HEADER_FIELD => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "gzip header field too long",
                    ));
                }
                _ => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
            hash(&field);
        }
    }
    if let Some(c) = crc {
        let mut stored = [0u8; 2];
        r.read_exact(&mut stored)?;
        if u16::from_le_bytes(stored) != c.sum() as u16 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "corrupt gzip stream does not have a matching checksum",
            ));
        }
    }
    Ok(())
}
