//! The softmax's exponential, written so that the compiler vectorises it.

/// `exp(x)` for f32 within 2 ulp of the exact value (for results above the smallest normal, 2^-126), with
/// no table and no branch, so that loops over slices vectorise.
///
/// PyTorch's CPU softmax (what nnU-Net's `softmax_helper` runs) also uses its own vectorised exponential
/// (SLEEF's `expf` with 1 ulp); neither is the C library's, so results may differ from it, and from each
/// other, by an ulp or two. Range reduction `x = n ln2 + r` (Cody-Waite, two constants), a degree-6
/// polynomial for `exp(r)` (the Cephes `expf` coefficients), and scaling by `2^n` through the exponent bits.
/// Below -87.33 (where `exp` leaves the normal range) the result is 0; above 88.72 it is `f32::MAX`
/// (softmax arguments are never positive); NaN stays NaN.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer (ties to even).
    const MAGIC: f32 = 12_582_912.0;
    const LOWER: f32 = -87.336_55;
    const UPPER: f32 = 88.722_83;
    let xc = x.clamp(LOWER, UPPER);
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let z = r * r;
    let p = (((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 0.5)
        * z
        + r
        + 1.0;
    // n is in [-126, 128]; the low bits of t hold n + 0x400000 (the magic's mantissa).
    let ni = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    // Split 2^n into two factors so that n = 128 (x near UPPER) does not overflow the exponent field.
    let half = ni >> 1;
    let s1 = f32::from_bits(((half + 127) << 23) as u32);
    let s2 = f32::from_bits(((ni - half + 127) << 23) as u32);
    let y = p * s1 * s2;
    let y = if x < LOWER { 0.0 } else { y };
    if x.is_nan() {
        x
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn within_two_ulp_on_the_softmax_range() {
        let mut worst = 0;
        let mut x = -87.0f32;
        while x <= 0.0 {
            let exact = (x as f64).exp() as f32;
            worst = worst.max(ulps(exp_f32(x), exact));
            x += 1.3e-4;
        }
        for x in [
            -1e-7f32, -1e-30, 0.0, -0.5, -1.0, -2.0, 1.0, 10.0, 80.0, 88.7,
        ] {
            worst = worst.max(ulps(exp_f32(x), (x as f64).exp() as f32));
        }
        assert!(worst <= 2, "worst error {worst} ulp");
    }

    #[test]
    fn special_values() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(exp_f32(1000.0).is_finite());
    }
}
