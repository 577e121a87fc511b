//! NumPy's summation and percentile of float64 vectors.

/// NumPy's pairwise summation of a contiguous float64 array (`pairwise_sum` in NumPy's
/// `loops_utils.h.src`: blocks of 128, eight accumulators), reproduced for bit-identical sums. Like
/// NumPy's inner loop it starts short runs from -0.0, so an empty or all -0.0 input sums to -0.0; `np.sum`
/// adds that to its identity 0.0 (`0.0 + pairwise_sum(v)`).
pub fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(-0.0, |s, &v| s + v)
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i + 8 <= n {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

/// `np.percentile(values, q)` with NumPy's default `linear` method (virtual index `(n - 1) * q / 100`,
/// NumPy's `_lerp`); NaN for no values. Uses selection, not a full sort.
pub fn percentile_linear(mut values: Vec<f64>, q: f64) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let virtual_index = (n - 1) as f64 * (q / 100.0);
    if virtual_index >= (n - 1) as f64 {
        return values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    }
    let prev = virtual_index.floor();
    let gamma = virtual_index - prev;
    let prev = prev as usize;
    let (_, &mut a, rest) = values.select_nth_unstable_by(prev, f64::total_cmp);
    let b = rest.iter().copied().fold(f64::INFINITY, f64::min);
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_small_and_large() {
        assert_eq!(pairwise_sum(&[1.0, 2.0, 3.0]), 6.0);
        let v: Vec<f64> = (0..300).map(|i| i as f64).collect();
        assert_eq!(pairwise_sum(&v), 44850.0);
        // NumPy's inner loop starts from -0.0.
        assert_eq!(pairwise_sum(&[]).to_bits(), (-0.0f64).to_bits());
        assert_eq!((0.0 + pairwise_sum(&[])).to_bits(), 0.0f64.to_bits());
    }
}
