//! gzip decoding and parallel gzip encoding.
//!
//! Writing splits the stream into blocks of [`BLOCK`] bytes compressed on the rayon pool, each a complete
//! gzip member (RFC 1952 allows concatenated members; zlib's `gzread`, Python's `gzip` and nibabel read
//! them as one stream). Each member header carries an `FEXTRA` subfield `Nu` holding the member's
//! compressed length and uncompressed length (two little-endian `u32`), in the spirit of BGZF. A reader
//! that finds that subfield in every member can inflate the members in parallel; any other gzip file is
//! inflated as one stream. The subfield is only a hint: lengths that point past the end of the file or add
//! up to more than it can inflate to are ignored, and members that do not match their lengths make the
//! reader inflate the file as one stream, so a wrong field can cost time but never memory or correctness.
//! Members have a fixed size, so the output does not depend on the number of threads.

use std::io::Read;
use std::path::Path;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use rayon::prelude::*;

use crate::error::VolumeError;

/// Uncompressed bytes per gzip member when writing.
pub(crate) const BLOCK: usize = 4 << 20;
/// deflate cannot expand data by more than about 1032:1; with slack for headers.
const MAX_RATIO: u64 = 1040;
const SUBFIELD: [u8; 2] = *b"Nu";
/// Bytes of a member header with the `Nu` subfield.
pub(crate) const HEADER_LEN: usize = 10 + 2 + 4 + 8;

/// Whether `bytes` start like a gzip stream.
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
}

/// The most a gzip file of `len` bytes can inflate to.
pub(crate) fn max_inflated(len: u64) -> u64 {
    len.saturating_mul(MAX_RATIO).saturating_add(1 << 16)
}

fn corrupt(path: &Path, reason: impl Into<String>) -> VolumeError {
    VolumeError::CorruptGzip {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Inflates only the first `n` bytes of a gzip stream (header peeking). Returns fewer when the stream is
/// shorter.
pub(crate) fn inflate_prefix(path: &Path, gz: &[u8], n: usize) -> Result<Vec<u8>, VolumeError> {
    let mut out = Vec::with_capacity(n);
    let mut dec = PaddedMultiGz::new(gz);
    (&mut dec)
        .take(n as u64)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(path, e.to_string()))?;
    Ok(out)
}

/// Reads the members of a gzip stream one after the other, like `MultiGzDecoder`, but ends at trailing
/// zero bytes after a member instead of reading them as a broken header: tape and block-device tools
/// pad files with zeros, and `gzip -t`, SimpleITK and nibabel accept such files.
pub(crate) struct PaddedMultiGz<'a> {
    rest: &'a [u8],
    member: Option<flate2::bufread::GzDecoder<&'a [u8]>>,
}

impl<'a> PaddedMultiGz<'a> {
    /// A reader over the whole file `gz`.
    pub(crate) fn new(gz: &'a [u8]) -> Self {
        PaddedMultiGz {
            rest: gz,
            member: None,
        }
    }
}

impl Read for PaddedMultiGz<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let dec = match self.member.as_mut() {
                Some(d) => d,
                None => {
                    if self.rest.is_empty() || self.rest.iter().all(|&b| b == 0) {
                        return Ok(0);
                    }
                    self.member
                        .insert(flate2::bufread::GzDecoder::new(self.rest))
                }
            };
            let k = dec.read(buf)?;
            if k > 0 {
                return Ok(k);
            }
            // End of this member: go on after its trailer.
            if let Some(d) = self.member.take() {
                self.rest = d.into_inner();
            }
        }
    }
}

/// One member found by walking the `Nu` subfields.
pub(crate) struct Member {
    /// Offset of the member in the file.
    pub start: usize,
    /// Compressed length, header and trailer included.
    pub len: usize,
    /// Uncompressed length.
    pub raw_len: usize,
}

/// Walks the members of a stream written by [`compress_parallel`]; `None` when any member lacks the
/// subfield, a length points past the end of the file, or the uncompressed lengths add up to more than
/// the file could inflate to (a lying size field then costs nothing: the caller inflates the file as one
/// stream and reports what is really there).
pub(crate) fn index_members(gz: &[u8]) -> Option<Vec<Member>> {
    let mut members = Vec::new();
    let mut pos = 0usize;
    let mut total = 0u64;
    while pos < gz.len() {
        let h = gz.get(pos..pos.checked_add(HEADER_LEN)?)?;
        if h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 || h[3] != 4 || h[10] != 12 || h[11] != 0 {
            return None;
        }
        if h[12..14] != SUBFIELD || h[14] != 8 || h[15] != 0 {
            return None;
        }
        let len = u32::from_le_bytes([h[16], h[17], h[18], h[19]]) as usize;
        let raw_len = u32::from_le_bytes([h[20], h[21], h[22], h[23]]) as usize;
        if len < HEADER_LEN + 8 || pos.checked_add(len)? > gz.len() {
            return None;
        }
        total += raw_len as u64;
        if raw_len as u64 > max_inflated(len as u64) || total > max_inflated(gz.len() as u64) {
            return None;
        }
        members.push(Member {
            start: pos,
            len,
            raw_len,
        });
        pos += len;
    }
    (!members.is_empty()).then_some(members)
}

/// Total uncompressed length of indexed members.
pub(crate) fn members_len(members: &[Member]) -> u64 {
    members.iter().map(|m| m.raw_len as u64).sum()
}

/// Compresses `parts` (concatenated) into gzip members of [`BLOCK`] bytes each, in parallel.
/// `level` is zlib's 0..=9.
pub(crate) fn compress_parallel(parts: &[&[u8]], level: u32) -> Vec<Vec<u8>> {
    // Cut the concatenation of `parts` into blocks without copying, except where a block spans parts.
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let n_blocks = total.div_ceil(BLOCK).max(1);
    (0..n_blocks)
        .into_par_iter()
        .map(|b| {
            let (lo, hi) = (b * BLOCK, ((b + 1) * BLOCK).min(total));
            let mut pieces: Vec<&[u8]> = Vec::with_capacity(2);
            let mut base = 0;
            for p in parts {
                let (s, e) = (lo.max(base), hi.min(base + p.len()));
                if s < e {
                    pieces.push(&p[s - base..e - base]);
                }
                base += p.len();
            }
            compress_member(&pieces, level)
        })
        .collect()
}

fn compress_member(pieces: &[&[u8]], level: u32) -> Vec<u8> {
    let raw_len: usize = pieces.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(HEADER_LEN + raw_len / 2 + 1024);
    // ID1 ID2 CM=deflate FLG=FEXTRA MTIME=0 XFL=0 OS=unknown XLEN=12
    out.extend_from_slice(&[0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255, 12, 0]);
    out.extend_from_slice(&SUBFIELD);
    out.extend_from_slice(&[8, 0]);
    out.extend_from_slice(&[0; 8]); // lengths, patched below
    let mut enc = Compress::new(Compression::new(level.min(9)), false);
    let mut crc = Crc::new();
    for (i, piece) in pieces.iter().enumerate() {
        crc.update(piece);
        let last = i + 1 == pieces.len();
        let flush = if last {
            FlushCompress::Finish
        } else {
            FlushCompress::None
        };
        let mut input = *piece;
        loop {
            if out.capacity() - out.len() < 1 << 16 {
                out.reserve(out.len().max(1 << 16));
            }
            let before = enc.total_in();
            // Compression into a Vec with spare capacity cannot fail with a valid level.
            let status = enc
                .compress_vec(input, &mut out, flush)
                .unwrap_or(Status::StreamEnd);
            input = &input[(enc.total_in() - before) as usize..];
            match status {
                Status::StreamEnd => break,
                _ if !last && input.is_empty() => break,
                _ => {}
            }
        }
    }
    if pieces.is_empty() {
        loop {
            out.reserve(64);
            if let Ok(Status::StreamEnd) | Err(_) =
                enc.compress_vec(&[], &mut out, FlushCompress::Finish)
            {
                break;
            }
        }
    }
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(raw_len as u32).to_le_bytes());
    let len = out.len() as u32;
    out[16..20].copy_from_slice(&len.to_le_bytes());
    out[20..24].copy_from_slice(&(raw_len as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_members_are_indexed_and_read_by_generic_decoders() {
        let data: Vec<u8> = (0..(BLOCK * 2 + 12345))
            .map(|i| ((i * 7919) % 251) as u8)
            .collect();
        let head = b"header bytes";
        let members = compress_parallel(&[head, &data], 1);
        assert_eq!(members.len(), 3);
        let gz: Vec<u8> = members.concat();
        let want: Vec<u8> = head.iter().chain(data.iter()).copied().collect();
        let index = index_members(&gz).expect("our members are indexed");
        assert_eq!(index.len(), 3);
        assert_eq!(members_len(&index), want.len() as u64);
        assert_eq!(index[1].start, members[0].len());
        // the generic decoder (what other readers do) sees the same bytes
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, want);
    }

    #[test]
    fn lying_size_fields_are_not_indexed() {
        let data = vec![7u8; 100_000];
        let gz = compress_parallel(&[&data], 1).concat();
        assert!(index_members(&gz).is_some());
        // compressed length past the end of the file
        let mut bad = gz.clone();
        bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(index_members(&bad).is_none());
        // an uncompressed length no deflate stream of this size can reach
        let mut bad = gz.clone();
        bad[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(index_members(&bad).is_none());
        // a plain gzip stream has no index
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), Compression::new(6));
        std::io::Write::write_all(&mut enc, &data).unwrap();
        assert!(index_members(&enc.finish().unwrap()).is_none());
    }
}
