//! Voxel decoding straight into the output array, as the bytes come out of the file or the inflater.
//!
//! The NIfTI byte stream (header, extensions, then the voxels of every channel) is never held whole once
//! inflated: each piece the inflater produces (a few hundred KiB, still in cache) is converted at once
//! into its place in the output. Three drivers feed pieces:
//! - [`decode_members`]: gzip files written by this crate, whose members carry their sizes (the `Nu`
//!   subfield, see [`gz`]): the members are inflated and converted in parallel on the rayon
//!   pool, each into its own disjoint part of the output;
//! - [`decode_stream`]: any other gzip file, inflated as one stream on the calling thread while a second
//!   thread converts the previous piece (for outputs of at least [`PIPELINE_MIN`] bytes);
//! - [`decode_plain`]: uncompressed files, converted in parallel chunks.
//!
//! Voxels whose bytes straddle two members are put together after the parallel part.

use std::io::Read;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::path::Path;

use flate2::{Crc, Decompress, FlushDecompress, Status};
use rayon::prelude::*;

use crate::error::VolumeError;
use crate::gz::{self, Member};
use crate::voxel::Source;

/// Bytes inflated per step before they are converted (small enough to stay in the core's cache).
const PIECE: usize = 256 << 10;
/// Bytes per piece handed from the inflating thread to the converting one in [`decode_stream`].
const STREAM_PIECE: usize = 1 << 20;
/// Output size from which [`decode_stream`] converts on a second thread.
pub(crate) const PIPELINE_MIN: usize = 8 << 20;
/// Voxels per parallel task in [`decode_plain`].
const PLAIN_CHUNK: usize = 1 << 18;

/// Turns whole on-disk voxels into output values.
pub(crate) trait Convert: Sync {
    /// The output voxel type.
    type Out: Copy + Send + Sync;
    /// Bytes per on-disk voxel (1..=8).
    fn size(&self) -> usize;
    /// Converts `src` (exactly `dst.len()` voxels) into `dst`, writing every element. Returns the index in
    /// `dst` and the value (after scaling) of the first voxel the output type cannot hold exactly.
    fn convert(&self, src: &[u8], dst: &mut [MaybeUninit<Self::Out>]) -> Option<(usize, f64)>;
}

/// A [`Convert`] from the on-disk type `S` with a per-voxel function: `Err(value)` marks a value the
/// output cannot hold (`value` is what the error reports).
pub(crate) struct Conv<S, T, F> {
    big_endian: bool,
    f: F,
    _types: PhantomData<fn(S) -> T>,
}

impl<S, T, F> Conv<S, T, F>
where
    S: Source,
    T: Copy + Default + Send + Sync,
    F: Fn(S) -> Result<T, f64> + Sync,
{
    pub(crate) fn new(big_endian: bool, f: F) -> Self {
        Conv {
            big_endian,
            f,
            _types: PhantomData,
        }
    }

    #[inline(always)]
    fn run<const BE: bool>(&self, src: &[u8], dst: &mut [MaybeUninit<T>]) -> Option<(usize, f64)> {
        let mut bad = None;
        for (i, (d, s)) in dst.iter_mut().zip(src.chunks_exact(S::SIZE)).enumerate() {
            match (self.f)(S::read(s, BE)) {
                Ok(v) => {
                    d.write(v);
                }
                Err(value) => {
                    d.write(T::default());
                    if bad.is_none() {
                        bad = Some((i, value));
                    }
                }
            }
        }
        bad
    }
}

impl<S, T, F> Convert for Conv<S, T, F>
where
    S: Source,
    T: Copy + Default + Send + Sync,
    F: Fn(S) -> Result<T, f64> + Sync,
{
    type Out = T;

    fn size(&self) -> usize {
        S::SIZE
    }

    fn convert(&self, src: &[u8], dst: &mut [MaybeUninit<T>]) -> Option<(usize, f64)> {
        debug_assert_eq!(src.len(), dst.len() * S::SIZE);
        if self.big_endian {
            self.run::<true>(src, dst)
        } else {
            self.run::<false>(src, dst)
        }
    }
}

/// Where the voxels sit in the decoded stream: bytes `start..start + voxels * size`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    /// Stream offset of the first voxel byte.
    pub start: u64,
    /// Number of voxels to decode (all channels).
    pub voxels: u64,
}

/// The bytes of a voxel that straddles the edge of a stretch.
struct Fragment {
    voxel: u64,
    offset: usize,
    len: usize,
    bytes: [u8; 8],
}

/// The first voxel that did not fit the output type: global index and value.
type Bad = Option<(u64, f64)>;

fn min_bad(a: Bad, b: Bad) -> Bad {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.0 < x.0 { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

/// What a [`Sink`] did.
struct Done {
    written: u64,
    fragments: Vec<Fragment>,
    bad: Bad,
}

/// Receives a contiguous stretch of the decoded stream, in order, and converts the voxels whose bytes all
/// fall inside it into `out` (voxel `first` first); the bytes of voxels cut by either edge of the stretch
/// are kept as [`Fragment`]s.
struct Sink<'a, C: Convert> {
    conv: &'a C,
    size: u64,
    span_start: u64,
    span_end: u64,
    pos: u64,
    out: &'a mut [MaybeUninit<C::Out>],
    first: u64,
    written: usize,
    carry: [u8; 8],
    carry_len: usize,
    carry_voxel: u64,
    carry_from: usize,
    fragments: Vec<Fragment>,
    bad: Bad,
    overflow: bool,
}

impl<'a, C: Convert> Sink<'a, C> {
    fn new(
        conv: &'a C,
        span: Span,
        pos: u64,
        first: u64,
        out: &'a mut [MaybeUninit<C::Out>],
    ) -> Self {
        let size = conv.size() as u64;
        Sink {
            conv,
            size,
            span_start: span.start,
            span_end: span.start + span.voxels * size,
            pos,
            out,
            first,
            written: 0,
            carry: [0; 8],
            carry_len: 0,
            carry_voxel: 0,
            carry_from: 0,
            fragments: Vec::new(),
            bad: None,
            overflow: false,
        }
    }

    /// Converts `n` whole voxels from `src` into the output, in order.
    fn emit(&mut self, voxel: u64, src: &[u8], n: usize) {
        let at = self.written;
        if voxel != self.first + at as u64 || at + n > self.out.len() {
            // Only a stretch that yields more than its caller promised gets here; the caller checks
            // `written` and reports the file as corrupt.
            self.overflow = true;
            return;
        }
        if let Some((i, v)) = self.conv.convert(src, &mut self.out[at..at + n]) {
            self.bad = min_bad(self.bad, Some((voxel + i as u64, v)));
        }
        self.written += n;
    }

    fn push(&mut self, mut chunk: &[u8]) {
        if self.pos < self.span_start {
            let skip = (self.span_start - self.pos).min(chunk.len() as u64) as usize;
            self.pos += skip as u64;
            chunk = &chunk[skip..];
        }
        if chunk.is_empty() || self.pos >= self.span_end {
            self.pos += chunk.len() as u64;
            return;
        }
        let take = (self.span_end - self.pos).min(chunk.len() as u64) as usize;
        let after = (chunk.len() - take) as u64;
        chunk = &chunk[..take];
        let size = self.size as usize;
        let rel = self.pos - self.span_start;
        let (voxel, within) = (rel / self.size, (rel % self.size) as usize);
        if within != 0 || self.carry_len != 0 {
            if self.carry_len == 0 {
                // The stretch starts inside a voxel.
                self.carry_voxel = voxel;
                self.carry_from = within;
            }
            let n = (size - within).min(chunk.len());
            self.carry[self.carry_len..self.carry_len + n].copy_from_slice(&chunk[..n]);
            self.carry_len += n;
            self.pos += n as u64;
            chunk = &chunk[n..];
            if self.carry_from + self.carry_len == size {
                if self.carry_from == 0 {
                    let bytes = self.carry;
                    self.emit(self.carry_voxel, &bytes[..size], 1);
                } else {
                    self.fragments.push(Fragment {
                        voxel: self.carry_voxel,
                        offset: self.carry_from,
                        len: self.carry_len,
                        bytes: self.carry,
                    });
                }
                self.carry_len = 0;
            }
        }
        if !chunk.is_empty() {
            let voxel = (self.pos - self.span_start) / self.size;
            let n = chunk.len() / size;
            if n > 0 {
                self.emit(voxel, &chunk[..n * size], n);
            }
            let tail = &chunk[n * size..];
            if !tail.is_empty() {
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carry_len = tail.len();
                self.carry_voxel = voxel + n as u64;
                self.carry_from = 0;
            }
            self.pos += chunk.len() as u64;
        }
        self.pos += after;
    }

    fn finish(mut self) -> Done {
        if self.carry_len != 0 {
            self.fragments.push(Fragment {
                voxel: self.carry_voxel,
                offset: self.carry_from,
                len: self.carry_len,
                bytes: self.carry,
            });
        }
        Done {
            written: if self.overflow {
                u64::MAX
            } else {
                self.written as u64
            },
            fragments: self.fragments,
            bad: self.bad,
        }
    }
}

/// An output vector of `n` values, allocated without touching its memory (the decoders write every
/// element exactly once, in parallel, so the page faults are spread over the threads too).
pub(crate) fn alloc_output<T>(path: &Path, n: usize) -> Result<Vec<T>, VolumeError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| VolumeError::OutOfMemory {
            path: path.to_path_buf(),
            bytes: (n as u64).saturating_mul(std::mem::size_of::<T>() as u64),
        })?;
    advise_huge_pages(&mut v);
    Ok(v)
}

/// Asks Linux to back the unused capacity of `v` with transparent huge pages when it is large: a fresh
/// 480 MB output otherwise costs some 120 000 page faults, a large part of a read's time.
pub(crate) fn advise_huge_pages<T>(v: &mut Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let spare = v.spare_capacity_mut();
        let bytes = std::mem::size_of_val(spare);
        if bytes < 4 * HUGE {
            return;
        }
        let start = spare.as_mut_ptr() as usize;
        let lo = start.next_multiple_of(HUGE);
        let hi = (start + bytes) / HUGE * HUGE;
        if hi > lo {
            // SAFETY: `lo..hi` lies inside `v`'s allocation, which this function borrows mutably;
            // MADV_HUGEPAGE only changes how the kernel backs those pages, never their contents or
            // mapping, and its failure (an old kernel, THP disabled) is harmless.
            unsafe {
                libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// Marks the first `n` elements of `v` as initialised once `written == n` (else reports `err`).
fn assume_written<T>(
    mut v: Vec<T>,
    n: usize,
    written: u64,
    err: impl FnOnce() -> VolumeError,
) -> Result<Vec<T>, VolumeError> {
    if written != n as u64 || v.capacity() < n {
        return Err(err());
    }
    // SAFETY: `written == n` counts the elements of `v.spare_capacity_mut()[..n]` the decoder wrote: every
    // `Sink` writes its own disjoint range from its start without gaps (`Sink::emit` checks the order),
    // and the fragments fill the voxels between those ranges, each once.
    unsafe { v.set_len(n) };
    Ok(v)
}

fn corrupt(path: &Path, reason: impl Into<String>) -> VolumeError {
    VolumeError::CorruptGzip {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn out_of_range(path: &Path, bad: Bad, target: &'static str) -> Result<(), VolumeError> {
    match bad {
        Some((_, value)) => Err(VolumeError::ValueOutOfRange {
            path: path.to_path_buf(),
            value,
            target,
        }),
        None => Ok(()),
    }
}

/// Decodes the voxels of an uncompressed file held in `bytes` (the caller checked that `span` fits).
pub(crate) fn decode_plain<C: Convert>(
    path: &Path,
    bytes: &[u8],
    span: Span,
    conv: &C,
    target: &'static str,
) -> Result<Vec<C::Out>, VolumeError> {
    let size = conv.size();
    let n = span.voxels as usize;
    let src = bytes
        .get(span.start as usize..)
        .and_then(|s| s.get(..n * size))
        .ok_or_else(|| VolumeError::Truncated {
            path: path.to_path_buf(),
            needed: span.start + (n * size) as u64,
            available: bytes.len() as u64,
        })?;
    let mut v = alloc_output::<C::Out>(path, n)?;
    let bad = v.spare_capacity_mut()[..n]
        .par_chunks_mut(PLAIN_CHUNK)
        .zip(src.par_chunks(PLAIN_CHUNK * size))
        .enumerate()
        .map(|(i, (dst, s))| {
            conv.convert(s, dst)
                .map(|(k, value)| ((i * PLAIN_CHUNK + k) as u64, value))
        })
        .reduce(|| None, min_bad);
    out_of_range(path, bad, target)?;
    assume_written(v, n, n as u64, || VolumeError::Truncated {
        path: path.to_path_buf(),
        needed: span.start + (n * size) as u64,
        available: bytes.len() as u64,
    })
}

/// Decodes the voxels of gzip members indexed by [`gz::index_members`], in parallel. The members must
/// cover at least `span` (checked by the caller).
pub(crate) fn decode_members<C: Convert>(
    path: &Path,
    gz_bytes: &[u8],
    members: &[Member],
    span: Span,
    conv: &C,
    target: &'static str,
) -> Result<Vec<C::Out>, VolumeError> {
    let size = conv.size() as u64;
    let n = span.voxels as usize;
    let span_end = span.start + span.voxels * size;
    let mut v = alloc_output::<C::Out>(path, n)?;
    // Each member's stream offset and the voxels that lie wholly inside it.
    let mut jobs = Vec::with_capacity(members.len());
    {
        let mut rest = &mut v.spare_capacity_mut()[..n];
        let mut taken = 0u64; // voxels handed out so far (index of rest[0])
        let mut pos = 0u64;
        for m in members {
            let (lo, hi) = (pos, pos + m.raw_len as u64);
            pos = hi;
            let (a, b) = (lo.max(span.start), hi.min(span_end));
            let (first, end) = if a < b {
                let first = (a - span.start).div_ceil(size);
                let end = (b - span.start) / size;
                (first, end.max(first))
            } else {
                (taken, taken)
            };
            // Voxels between the previous member's range and this one straddle the boundary.
            let gap = (first.max(taken) - taken) as usize;
            let len = (end.saturating_sub(first.max(taken))) as usize;
            let r = std::mem::take(&mut rest);
            let (_, r) = r.split_at_mut(gap.min(r.len()));
            let (mine, r) = r.split_at_mut(len.min(r.len()));
            rest = r;
            let first = taken + gap as u64;
            taken = first + mine.len() as u64;
            jobs.push((m, lo, first, mine));
        }
    }
    let done: Vec<Done> = jobs
        .into_par_iter()
        .map_init(
            || vec![0u8; PIECE],
            |scratch, (m, lo, first, out)| {
                let mut sink = Sink::new(conv, span, lo, first, out);
                inflate_member(path, gz_bytes, m, scratch, |piece| sink.push(piece))?;
                Ok(sink.finish())
            },
        )
        .collect::<Result<_, VolumeError>>()?;
    let mut written = 0u64;
    let mut bad = None;
    let mut fragments = Vec::new();
    for d in done {
        written = written.saturating_add(d.written);
        bad = min_bad(bad, d.bad);
        fragments.extend(d.fragments);
    }
    let (w, b) = join_fragments(fragments, conv, &mut v.spare_capacity_mut()[..n]);
    written = written.saturating_add(w);
    bad = min_bad(bad, b);
    out_of_range(path, bad, target)?;
    assume_written(v, n, written, || {
        corrupt(path, "the gzip members do not add up to the image data")
    })
}

/// Puts together the voxels cut by member boundaries and converts them. Returns how many were written.
fn join_fragments<C: Convert>(
    mut fragments: Vec<Fragment>,
    conv: &C,
    out: &mut [MaybeUninit<C::Out>],
) -> (u64, Bad) {
    let size = conv.size();
    fragments.sort_by_key(|f| (f.voxel, f.offset));
    let mut written = 0;
    let mut bad = None;
    let mut i = 0;
    while i < fragments.len() {
        let voxel = fragments[i].voxel;
        let mut bytes = [0u8; 8];
        let mut have = 0;
        let mut ok = true;
        while i < fragments.len() && fragments[i].voxel == voxel {
            let f = &fragments[i];
            // In order and without overlap, as members that tile the stream give them.
            if ok && f.offset == have && have + f.len <= size {
                bytes[have..have + f.len].copy_from_slice(&f.bytes[..f.len]);
                have += f.len;
            } else {
                ok = false;
            }
            i += 1;
        }
        if ok && have == size {
            if let Some(slot) = out.get_mut(voxel as usize..voxel as usize + 1) {
                if let Some((_, v)) = conv.convert(&bytes[..size], slot) {
                    bad = min_bad(bad, Some((voxel, v)));
                }
                written += 1;
            }
        }
    }
    (written, bad)
}

/// Inflates one member (raw deflate between its header and trailer) piece by piece, checks its length and
/// CRC, and hands each piece to `push`.
fn inflate_member(
    path: &Path,
    gz_bytes: &[u8],
    m: &Member,
    scratch: &mut [u8],
    mut push: impl FnMut(&[u8]),
) -> Result<(), VolumeError> {
    let at = m.start;
    let member = &gz_bytes[m.start..m.start + m.len];
    let mut input = &member[gz::HEADER_LEN..m.len - 8];
    let t = &member[m.len - 8..];
    let want_crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
    let isize = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
    let mut dec = Decompress::new(false);
    let mut crc = Crc::new();
    let mut produced = 0usize;
    loop {
        let (in0, out0) = (dec.total_in(), dec.total_out());
        let status = dec
            .decompress(input, scratch, FlushDecompress::None)
            .map_err(|e| corrupt(path, format!("member at byte {at}: {e}")))?;
        let used = (dec.total_in() - in0) as usize;
        let got = (dec.total_out() - out0) as usize;
        input = &input[used..];
        produced += got;
        if produced > m.raw_len {
            return Err(corrupt(
                path,
                format!("member at byte {at} is longer than its size field"),
            ));
        }
        crc.update(&scratch[..got]);
        push(&scratch[..got]);
        match status {
            Status::StreamEnd => break,
            _ if used == 0 && got == 0 => {
                return Err(VolumeError::Truncated {
                    path: path.to_path_buf(),
                    needed: m.raw_len as u64,
                    available: produced as u64,
                })
            }
            _ => {}
        }
    }
    if produced != m.raw_len || isize as usize != m.raw_len || !input.is_empty() {
        return Err(corrupt(
            path,
            format!("member at byte {at} has the wrong length"),
        ));
    }
    if crc.sum() != want_crc {
        return Err(corrupt(
            path,
            format!("CRC mismatch in member at byte {at}"),
        ));
    }
    Ok(())
}

fn read_fill(
    path: &Path,
    dec: &mut impl Read,
    buf: &mut [u8],
    needed: u64,
    pos: u64,
) -> Result<usize, VolumeError> {
    let mut filled = 0;
    while filled < buf.len() {
        match dec.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                let available = pos + filled as u64;
                // Cut after the image data, inside a member's CRC and size trailer: every voxel is
                // there, but the stream cannot be checked (a "needs N ... holds N" would contradict itself).
                if available >= needed {
                    return Err(corrupt(
                        path,
                        "the file is cut inside a gzip trailer (after the image data), so its CRC cannot be checked",
                    ));
                }
                return Err(VolumeError::Truncated {
                    path: path.to_path_buf(),
                    needed,
                    available,
                });
            }
            Err(e) => return Err(corrupt(path, e.to_string())),
        }
    }
    Ok(filled)
}

/// Decodes the voxels of any gzip stream (one or more members, no index), inflating sequentially. Bytes
/// past the image data are inflated too, so that every member's CRC is checked.
pub(crate) fn decode_stream<C: Convert>(
    path: &Path,
    gz_bytes: &[u8],
    span: Span,
    conv: &C,
    target: &'static str,
) -> Result<Vec<C::Out>, VolumeError> {
    let size = conv.size() as u64;
    let n = span.voxels as usize;
    let needed = span.start + span.voxels * size;
    let mut v = alloc_output::<C::Out>(path, n)?;
    let mut dec = crate::gz::PaddedMultiGz::new(gz_bytes);
    let out = &mut v.spare_capacity_mut()[..n];
    let sink = Sink::new(conv, span, 0, 0, out);
    let (done, pos) = if n * std::mem::size_of::<C::Out>() < PIPELINE_MIN {
        let mut sink = sink;
        let mut buf = vec![0u8; PIECE];
        let mut pos = 0u64;
        loop {
            let k = read_fill(path, &mut dec, &mut buf, needed, pos)?;
            if k == 0 {
                break;
            }
            sink.push(&buf[..k]);
            pos += k as u64;
        }
        (sink.finish(), pos)
    } else {
        pipelined(path, &mut dec, sink, needed)?
    };
    out_of_range(path, done.bad, target)?;
    let written = done.written;
    assume_written(v, n, written, || {
        if pos < needed {
            VolumeError::Truncated {
                path: path.to_path_buf(),
                needed,
                available: pos,
            }
        } else {
            corrupt(path, "the stream does not hold the image data")
        }
    })
}

/// Inflates on this thread while a scoped thread converts the previous pieces.
fn pipelined<C: Convert>(
    path: &Path,
    dec: &mut impl Read,
    mut sink: Sink<'_, C>,
    needed: u64,
) -> Result<(Done, u64), VolumeError> {
    use std::sync::mpsc::{channel, sync_channel};
    let (full_tx, full_rx) = sync_channel::<(Vec<u8>, usize)>(2);
    let (empty_tx, empty_rx) = channel::<Vec<u8>>();
    std::thread::scope(|s| {
        let converter = s.spawn(move || {
            for (buf, k) in full_rx {
                sink.push(&buf[..k]);
                // The inflater may have stopped already; the buffer is then dropped here.
                let _ = empty_tx.send(buf);
            }
            sink.finish()
        });
        let mut pos = 0u64;
        let inflated = loop {
            let mut buf = empty_rx
                .try_recv()
                .unwrap_or_else(|_| vec![0u8; STREAM_PIECE]);
            match read_fill(path, dec, &mut buf, needed, pos) {
                Ok(0) => break Ok(()),
                Ok(k) => {
                    pos += k as u64;
                    if full_tx.send((buf, k)).is_err() {
                        break Ok(());
                    }
                }
                Err(e) => break Err(e),
            }
        };
        drop(full_tx);
        let done = match converter.join() {
            Ok(d) => d,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        inflated.map(|()| (done, pos))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gz::{compress_parallel, index_members, BLOCK};

    fn conv_i16() -> impl Convert<Out = f32> {
        Conv::new(false, |v: i16| Ok::<f32, f64>(f32::from(v)))
    }

    /// A stream of `head` then `n` i16 voxels, cut into members at `cuts` (absolute offsets).
    fn stream(head: usize, n: usize) -> (Vec<u8>, Vec<f32>) {
        let vals: Vec<i16> = (0..n).map(|i| ((i * 7919) % 4001) as i16 - 2000).collect();
        let mut bytes = vec![0xabu8; head];
        for v in &vals {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        (bytes, vals.iter().map(|&v| f32::from(v)).collect())
    }

    fn member(bytes: &[u8]) -> Vec<u8> {
        compress_parallel(&[bytes], 1).concat()
    }

    #[test]
    fn voxels_cut_by_member_boundaries_are_joined() {
        let (bytes, want) = stream(353, 5000);
        // Odd cuts: voxels straddle members, and one member lies inside a single voxel.
        let cuts = [
            0,
            100,
            353,
            354,
            355,
            356,
            1001,
            1002,
            4000,
            4001,
            bytes.len(),
        ];
        let gz: Vec<u8> = cuts
            .windows(2)
            .flat_map(|w| member(&bytes[w[0]..w[1]]))
            .collect();
        let members = index_members(&gz).expect("indexed");
        assert_eq!(members.len(), cuts.len() - 1);
        let span = Span {
            start: 353,
            voxels: 5000,
        };
        let p = Path::new("cut.gz");
        let got = decode_members(p, &gz, &members, span, &conv_i16(), "f32").unwrap();
        assert_eq!(got, want);
        let got = decode_stream(p, &gz, span, &conv_i16(), "f32").unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn parallel_and_pipelined_paths_agree_with_the_plain_one() {
        let n = BLOCK + PIPELINE_MIN / 4 + 77; // several members, and the pipelined stream path
        let (bytes, want) = stream(352, n);
        let gz = compress_parallel(&[&bytes], 1).concat();
        let members = index_members(&gz).expect("indexed");
        assert!(members.len() >= 3);
        let span = Span {
            start: 352,
            voxels: n as u64,
        };
        let p = Path::new("big.gz");
        assert_eq!(
            decode_plain(p, &bytes, span, &conv_i16(), "f32").unwrap(),
            want
        );
        assert_eq!(
            decode_members(p, &gz, &members, span, &conv_i16(), "f32").unwrap(),
            want
        );
        assert_eq!(
            decode_stream(p, &gz, span, &conv_i16(), "f32").unwrap(),
            want
        );
    }

    #[test]
    fn corrupt_and_short_members_are_reported() {
        let (bytes, _) = stream(352, 100_000);
        let gz = compress_parallel(&[&bytes], 6).concat();
        let members = index_members(&gz).expect("indexed");
        let span = Span {
            start: 352,
            voxels: 100_000,
        };
        let p = Path::new("x.gz");
        let mut bad = gz.clone();
        let n = bad.len();
        bad[n - 8] ^= 0x01; // crc
        let err = decode_members(p, &bad, &members, span, &conv_i16(), "f32").unwrap_err();
        assert!(matches!(err, VolumeError::CorruptGzip { .. }), "{err}");
        let mut bad = gz.clone();
        bad[n / 2] ^= 0xff; // deflate data
        let err = decode_members(p, &bad, &members, span, &conv_i16(), "f32").unwrap_err();
        assert!(
            matches!(
                err,
                VolumeError::CorruptGzip { .. } | VolumeError::Truncated { .. }
            ),
            "{err}"
        );
        // more voxels asked for than the members hold
        let span = Span {
            start: 352,
            voxels: 100_001,
        };
        assert!(decode_members(p, &gz, &members, span, &conv_i16(), "f32").is_err());
        assert!(matches!(
            decode_stream(p, &gz, span, &conv_i16(), "f32").unwrap_err(),
            VolumeError::Truncated { .. }
        ));
    }

    #[test]
    fn first_bad_value_in_file_order_is_reported() {
        let n = 300_000;
        let mut vals: Vec<i16> = (0..n).map(|i| (i % 256) as i16).collect();
        vals[123_457] = 300;
        vals[200_001] = -5;
        vals[299_999] = 1000;
        let mut bytes = vec![0u8; 352];
        for v in &vals {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        // Many members (of 40001 bytes: odd, so voxels straddle them), decoded in parallel.
        let gz: Vec<u8> = bytes.chunks(40_001).flat_map(member).collect();
        let members = index_members(&gz).expect("indexed");
        let span = Span {
            start: 352,
            voxels: n as u64,
        };
        let conv = Conv::new(false, |v: i16| u8::try_from(v).map_err(|_| f64::from(v)));
        let p = Path::new("labels.gz");
        for err in [
            decode_members(p, &gz, &members, span, &conv, "u8").unwrap_err(),
            decode_stream(p, &gz, span, &conv, "u8").unwrap_err(),
            decode_plain(p, &bytes, span, &conv, "u8").unwrap_err(),
        ] {
            assert!(
                matches!(err, VolumeError::ValueOutOfRange { value, .. } if value == 300.0),
                "{err}"
            );
        }
    }
}
