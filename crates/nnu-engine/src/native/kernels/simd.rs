//! One 16-lane f32 vector per instruction set: a `__m512` (AVX-512), a pair of `__m256` (AVX2 + FMA) or a
//! plain array (portable). The micro-kernels are written once, generic over [`V16`], and instantiated inside
//! functions compiled with the matching `#[target_feature]`, into which these `#[inline(always)]` methods are
//! inlined.

// Register arrays are indexed by output block and position on purpose: the loops are unrolled.
#![allow(clippy::needless_range_loop)]

/// A vector of 16 f32 lanes (one channel block of the blocked layout).
///
/// # Safety
/// Every method is `unsafe` for two reasons the caller must uphold: the CPU supports the implementation's
/// instruction set (checked once by `detect_isa`), and pointers are valid for reading (or writing) 16 f32
/// (`load`, `store`) or one f32 (`splat_from`). No alignment is required.
pub(crate) trait V16: Copy {
    unsafe fn zero() -> Self;
    unsafe fn splat_from(p: *const f32) -> Self;
    unsafe fn load(p: *const f32) -> Self;
    /// The `Q` values at `p` repeated over the 16 lanes (`Q` is 2, 4, 8 or 16): lane `l` is `p[l % Q]`.
    unsafe fn load_rep<const Q: usize>(p: *const f32) -> Self;
    /// Lanes `k * Q + s` for `k < c` moved to lanes `k`, every other lane 0 (`Q` as in `load_rep`,
    /// `c <= 16 / Q`): one output position's channels out of the narrow kernel's accumulator.
    unsafe fn take_position<const Q: usize>(self, s: usize, c: usize) -> Self;
    /// One row of the narrow kernel's segmented plane: lane `c * Q + s` is `from[s][l0 + c]`, for the
    /// `P = 16 / Q` channels `l0 ..` of the `Q` positions whose channel blocks start at `from[s]`.
    unsafe fn gather_line<const P: usize, const Q: usize>(
        from: &[*const f32; 16],
        l0: usize,
    ) -> Self;
    unsafe fn store(self, p: *mut f32);
    /// `a * b + self`
    unsafe fn fma(self, a: Self, b: Self) -> Self;
    unsafe fn add(self, b: Self) -> Self;
    /// `self - b`
    unsafe fn sub(self, b: Self) -> Self;
    unsafe fn mul(self, b: Self) -> Self;
    unsafe fn max(self, b: Self) -> Self;
}

/// [`V16::gather_line`] lane by lane.
#[inline(always)]
unsafe fn gather_line_array<const P: usize, const Q: usize>(
    from: &[*const f32; 16],
    l0: usize,
) -> [f32; 16] {
    let mut r = [0.0; 16];
    for c in 0..P {
        for s in 0..Q {
            r[c * Q + s] = unsafe { *from[s].add(l0 + c) };
        }
    }
    r
}

/// Plain arrays: the compiler vectorises these loops for whatever the target has.
#[derive(Clone, Copy)]
pub(crate) struct Portable([f32; 16]);

impl V16 for Portable {
    #[inline(always)]
    unsafe fn zero() -> Self {
        Portable([0.0; 16])
    }
    #[inline(always)]
    unsafe fn splat_from(p: *const f32) -> Self {
        Portable([unsafe { *p }; 16])
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Portable(unsafe { std::ptr::read_unaligned(p as *const [f32; 16]) })
    }
    #[inline(always)]
    unsafe fn load_rep<const Q: usize>(p: *const f32) -> Self {
        let mut r = [0.0; 16];
        for (i, v) in r.iter_mut().enumerate() {
            *v = unsafe { *p.add(i % Q) };
        }
        Portable(r)
    }
    #[inline(always)]
    unsafe fn take_position<const Q: usize>(self, s: usize, c: usize) -> Self {
        let mut r = [0.0; 16];
        for k in 0..c {
            r[k] = self.0[k * Q + s];
        }
        Portable(r)
    }
    #[inline(always)]
    unsafe fn gather_line<const P: usize, const Q: usize>(
        from: &[*const f32; 16],
        l0: usize,
    ) -> Self {
        Portable(unsafe { gather_line_array::<P, Q>(from, l0) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { std::ptr::write_unaligned(p as *mut [f32; 16], self.0) }
    }
    #[inline(always)]
    unsafe fn fma(self, a: Self, b: Self) -> Self {
        let mut r = self.0;
        for i in 0..16 {
            r[i] += a.0[i] * b.0[i];
        }
        Portable(r)
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        let mut r = self.0;
        for i in 0..16 {
            r[i] += b.0[i];
        }
        Portable(r)
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        let mut r = self.0;
        for i in 0..16 {
            r[i] -= b.0[i];
        }
        Portable(r)
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        let mut r = self.0;
        for i in 0..16 {
            r[i] *= b.0[i];
        }
        Portable(r)
    }
    #[inline(always)]
    unsafe fn max(self, b: Self) -> Self {
        let mut r = self.0;
        for i in 0..16 {
            r[i] = r[i].max(b.0[i]);
        }
        Portable(r)
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::V16;
    use std::arch::x86_64::*;

    /// One `zmm` register.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512(pub(crate) __m512);

    impl V16 for Avx512 {
        #[inline(always)]
        unsafe fn zero() -> Self {
            Avx512(unsafe { _mm512_setzero_ps() })
        }
        #[inline(always)]
        unsafe fn splat_from(p: *const f32) -> Self {
            Avx512(unsafe { _mm512_set1_ps(*p) })
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx512(unsafe { _mm512_loadu_ps(p) })
        }
        #[inline(always)]
        unsafe fn load_rep<const Q: usize>(p: *const f32) -> Self {
            // Broadcast loads only (no shuffle): 64, 128 or 256 bits repeated.
            unsafe {
                Avx512(match Q {
                    2 => {
                        _mm512_castpd_ps(_mm512_set1_pd(std::ptr::read_unaligned(p as *const f64)))
                    }
                    4 => _mm512_broadcast_f32x4(_mm_loadu_ps(p)),
                    8 => _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_loadu_pd(p as *const f64))),
                    _ => _mm512_loadu_ps(p),
                })
            }
        }
        #[inline(always)]
        unsafe fn take_position<const Q: usize>(self, s: usize, c: usize) -> Self {
            // lane k <- lane k * Q + s (k < c), one masked permute
            unsafe {
                let idx = _mm512_add_epi32(
                    _mm512_mullo_epi32(
                        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                        _mm512_set1_epi32(Q as i32),
                    ),
                    _mm512_set1_epi32(s as i32),
                );
                let mask = ((1u32 << c) - 1) as u16;
                Avx512(_mm512_maskz_permutexvar_ps(mask, idx, self.0))
            }
        }
        #[inline(always)]
        unsafe fn gather_line<const P: usize, const Q: usize>(
            from: &[*const f32; 16],
            l0: usize,
        ) -> Self {
            // The Q positions' P channels side by side (lane s * P + c), then one permute to lane
            // c * Q + s.
            unsafe {
                match Q {
                    4 => {
                        let mut a = _mm512_castps128_ps512(_mm_loadu_ps(from[0].add(l0)));
                        a = _mm512_insertf32x4::<1>(a, _mm_loadu_ps(from[1].add(l0)));
                        a = _mm512_insertf32x4::<2>(a, _mm_loadu_ps(from[2].add(l0)));
                        a = _mm512_insertf32x4::<3>(a, _mm_loadu_ps(from[3].add(l0)));
                        let idx =
                            _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
                        Avx512(_mm512_permutexvar_ps(idx, a))
                    }
                    2 => {
                        let lo = _mm256_loadu_pd(from[0].add(l0) as *const f64);
                        let hi = _mm256_loadu_pd(from[1].add(l0) as *const f64);
                        let a = _mm512_castpd_ps(_mm512_insertf64x4::<1>(
                            _mm512_castpd256_pd512(lo),
                            hi,
                        ));
                        let idx =
                            _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
                        Avx512(_mm512_permutexvar_ps(idx, a))
                    }
                    _ => Avx512(_mm512_loadu_ps(
                        super::gather_line_array::<P, Q>(from, l0).as_ptr(),
                    )),
                }
            }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm512_storeu_ps(p, self.0) }
        }
        #[inline(always)]
        unsafe fn fma(self, a: Self, b: Self) -> Self {
            Avx512(unsafe { _mm512_fmadd_ps(a.0, b.0, self.0) })
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            Avx512(unsafe { _mm512_add_ps(self.0, b.0) })
        }
        #[inline(always)]
        unsafe fn sub(self, b: Self) -> Self {
            Avx512(unsafe { _mm512_sub_ps(self.0, b.0) })
        }
        #[inline(always)]
        unsafe fn mul(self, b: Self) -> Self {
            Avx512(unsafe { _mm512_mul_ps(self.0, b.0) })
        }
        #[inline(always)]
        unsafe fn max(self, b: Self) -> Self {
            Avx512(unsafe { _mm512_max_ps(self.0, b.0) })
        }
    }

    /// Two `ymm` registers (lanes 0..8 and 8..16).
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2(__m256, __m256);

    impl V16 for Avx2 {
        #[inline(always)]
        unsafe fn zero() -> Self {
            unsafe { Avx2(_mm256_setzero_ps(), _mm256_setzero_ps()) }
        }
        #[inline(always)]
        unsafe fn splat_from(p: *const f32) -> Self {
            unsafe {
                let v = _mm256_broadcast_ss(&*p);
                Avx2(v, v)
            }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            unsafe { Avx2(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))) }
        }
        #[inline(always)]
        unsafe fn load_rep<const Q: usize>(p: *const f32) -> Self {
            unsafe {
                let v = match Q {
                    2 => {
                        _mm256_castpd_ps(_mm256_set1_pd(std::ptr::read_unaligned(p as *const f64)))
                    }
                    4 => _mm256_broadcast_ps(&_mm_loadu_ps(p)),
                    8 => _mm256_loadu_ps(p),
                    _ => return Avx2(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))),
                };
                Avx2(v, v)
            }
        }
        #[inline(always)]
        unsafe fn take_position<const Q: usize>(self, s: usize, c: usize) -> Self {
            unsafe {
                let mut a = [0.0f32; 16];
                _mm256_storeu_ps(a.as_mut_ptr(), self.0);
                _mm256_storeu_ps(a.as_mut_ptr().add(8), self.1);
                let mut r = [0.0f32; 16];
                for k in 0..c {
                    r[k] = a[k * Q + s];
                }
                Avx2(
                    _mm256_loadu_ps(r.as_ptr()),
                    _mm256_loadu_ps(r.as_ptr().add(8)),
                )
            }
        }
        #[inline(always)]
        unsafe fn gather_line<const P: usize, const Q: usize>(
            from: &[*const f32; 16],
            l0: usize,
        ) -> Self {
            unsafe {
                let r = super::gather_line_array::<P, Q>(from, l0);
                Avx2(
                    _mm256_loadu_ps(r.as_ptr()),
                    _mm256_loadu_ps(r.as_ptr().add(8)),
                )
            }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe {
                _mm256_storeu_ps(p, self.0);
                _mm256_storeu_ps(p.add(8), self.1);
            }
        }
        #[inline(always)]
        unsafe fn fma(self, a: Self, b: Self) -> Self {
            unsafe {
                Avx2(
                    _mm256_fmadd_ps(a.0, b.0, self.0),
                    _mm256_fmadd_ps(a.1, b.1, self.1),
                )
            }
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            unsafe { Avx2(_mm256_add_ps(self.0, b.0), _mm256_add_ps(self.1, b.1)) }
        }
        #[inline(always)]
        unsafe fn sub(self, b: Self) -> Self {
            unsafe { Avx2(_mm256_sub_ps(self.0, b.0), _mm256_sub_ps(self.1, b.1)) }
        }
        #[inline(always)]
        unsafe fn mul(self, b: Self) -> Self {
            unsafe { Avx2(_mm256_mul_ps(self.0, b.0), _mm256_mul_ps(self.1, b.1)) }
        }
        #[inline(always)]
        unsafe fn max(self, b: Self) -> Self {
            unsafe { Avx2(_mm256_max_ps(self.0, b.0), _mm256_max_ps(self.1, b.1)) }
        }
    }
}
