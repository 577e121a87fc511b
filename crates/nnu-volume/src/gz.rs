//! gzip decoding and parallel gzip encoding.
//!
//! Writing splits the stream into blocks of [`BLOCK`] bytes compressed on the rayon pool, each a complete
//! gzip member (RFC 1952 allows concatenated members; zlib's `gzread`, Python's `gzip` and nibabel read
//! them as one stream). Each member header carries an `FEXTRA` subfield `Nu` holding the member's
//! compressed length and uncompressed length (two little-endian `u32`), in the spirit of BGZF. A reader
//! that finds that subfield in every member can inflate the members in parallel; any other gzip file is
//! inflated as one stream.

use std::io::Read;
use std::path::Path;

use flate2::{Compress, Compression, Crc, Decompress, FlushCompress, FlushDecompress, Status};
use rayon::prelude::*;

use crate::error::VolumeError;

/// Uncompressed bytes per gzip member when writing.
pub(crate) const BLOCK: usize = 4 << 20;
/// deflate cannot expand data by more than about 1032:1; with slack for headers.
const MAX_RATIO: u64 = 1040;
const SUBFIELD: [u8; 2] = *b"Nu";
const HEADER_LEN: usize = 10 + 2 + 4 + 8;

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
    let mut dec = flate2::bufread::MultiGzDecoder::new(gz);
    (&mut dec)
        .take(n as u64)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(path, e.to_string()))?;
    Ok(out)
}

/// One member found by walking the `Nu` subfields.
struct Member {
    start: usize,
    len: usize,
    raw_len: usize,
}

/// Walks the members of a stream written by [`compress_parallel`]; `None` when any member lacks the
/// subfield or the lengths do not add up.
fn index_members(gz: &[u8]) -> Option<Vec<Member>> {
    let mut members = Vec::new();
    let mut pos = 0usize;
    while pos < gz.len() {
        let h = gz.get(pos..pos + HEADER_LEN)?;
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
        members.push(Member {
            start: pos,
            len,
            raw_len,
        });
        pos += len;
    }
    (!members.is_empty()).then_some(members)
}

/// Inflates a whole gzip file. `expected` is the number of bytes the caller needs (from the header);
/// the stream may hold more (they are decoded and dropped, so the final CRC is still checked) but not
/// fewer. Members written by this crate are inflated in parallel.
pub(crate) fn inflate_all(path: &Path, gz: &[u8], expected: usize) -> Result<Vec<u8>, VolumeError> {
    if let Some(members) = index_members(gz) {
        let total: usize = members.iter().map(|m| m.raw_len).sum();
        if total >= expected && (total as u64) <= max_inflated(gz.len() as u64) {
            return inflate_members(path, gz, &members, total);
        }
    }
    let mut out = Vec::new();
    out.try_reserve_exact(expected)
        .map_err(|_| VolumeError::OutOfMemory {
            path: path.to_path_buf(),
            bytes: expected as u64,
        })?;
    let mut dec = flate2::bufread::MultiGzDecoder::new(gz);
    // read_to_end would grow the buffer past `expected` on trailing data: read exactly, then drain.
    out.resize(expected, 0);
    let mut filled = 0;
    while filled < expected {
        match dec.read(&mut out[filled..]) {
            Ok(0) => {
                return Err(VolumeError::Truncated {
                    path: path.to_path_buf(),
                    needed: expected as u64,
                    available: filled as u64,
                })
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(truncated_or_corrupt(path, e, expected, filled)),
        }
    }
    let mut sink = [0u8; 1 << 14];
    loop {
        match dec.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(truncated_or_corrupt(path, e, expected, expected)),
        }
    }
    Ok(out)
}

fn truncated_or_corrupt(
    path: &Path,
    e: std::io::Error,
    expected: usize,
    filled: usize,
) -> VolumeError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        VolumeError::Truncated {
            path: path.to_path_buf(),
            needed: expected as u64,
            available: filled as u64,
        }
    } else {
        corrupt(path, e.to_string())
    }
}

fn inflate_members(
    path: &Path,
    gz: &[u8],
    members: &[Member],
    total: usize,
) -> Result<Vec<u8>, VolumeError> {
    let mut out = Vec::new();
    out.try_reserve_exact(total)
        .map_err(|_| VolumeError::OutOfMemory {
            path: path.to_path_buf(),
            bytes: total as u64,
        })?;
    out.resize(total, 0);
    let mut slices = Vec::with_capacity(members.len());
    let mut rest = out.as_mut_slice();
    for m in members {
        let (head, tail) = rest.split_at_mut(m.raw_len);
        slices.push((m, head));
        rest = tail;
    }
    slices.into_par_iter().try_for_each(|(m, dst)| {
        let member = &gz[m.start..m.start + m.len];
        let payload = &member[HEADER_LEN..m.len - 8];
        let t = &member[m.len - 8..];
        let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        let isize = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        let mut dec = Decompress::new(false);
        let status = dec
            .decompress(payload, dst, FlushDecompress::Finish)
            .map_err(|e| corrupt(path, format!("member at byte {}: {e}", m.start)))?;
        if status != Status::StreamEnd
            || dec.total_out() as usize != m.raw_len
            || isize as usize != m.raw_len
        {
            return Err(corrupt(
                path,
                format!("member at byte {} has the wrong length", m.start),
            ));
        }
        let mut c = Crc::new();
        c.update(dst);
        if c.sum() != crc {
            return Err(corrupt(
                path,
                format!("CRC mismatch in member at byte {}", m.start),
            ));
        }
        Ok(())
    })?;
    Ok(out)
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
    fn parallel_members_round_trip_through_both_decoders() {
        let data: Vec<u8> = (0..(BLOCK * 2 + 12345))
            .map(|i| ((i * 7919) % 251) as u8)
            .collect();
        let head = b"header bytes";
        let members = compress_parallel(&[head, &data], 1);
        assert_eq!(members.len(), 3);
        let gz: Vec<u8> = members.concat();
        let want: Vec<u8> = head.iter().chain(data.iter()).copied().collect();
        let path = Path::new("mem.gz");
        assert!(index_members(&gz).is_some());
        assert_eq!(inflate_all(path, &gz, want.len()).unwrap(), want);
        // the generic decoder (what other readers do) sees the same bytes
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, want);
    }

    #[test]
    fn corrupt_member_is_reported() {
        let data = vec![42u8; 100_000];
        let mut gz = compress_parallel(&[&data], 6).concat();
        let n = gz.len();
        gz[n - 9] ^= 0xff; // last payload byte
        gz[n - 8] ^= 0x01; // crc
        let err = inflate_all(Path::new("x.gz"), &gz, data.len()).unwrap_err();
        assert!(
            matches!(
                err,
                VolumeError::CorruptGzip { .. } | VolumeError::Truncated { .. }
            ),
            "{err}"
        );
    }
}
