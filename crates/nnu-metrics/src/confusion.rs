//! Per-label confusion counts of two label volumes in one parallel pass.

use ndarray::{ArrayView3, Axis, Zip};
use rayon::prelude::*;

use crate::MetricsError;

/// Confusion counts of `test == label` against `reference == label`, as nnU-Net 1.7.1's
/// `evaluation.metrics.ConfusionMatrix.compute` defines them (`tp`: both, `fp`: test only, `fn_`:
/// reference only, `tn`: neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConfusionCounts {
    /// Voxels labelled `label` in both volumes.
    pub tp: u64,
    /// Voxels labelled `label` in the test volume only.
    pub fp: u64,
    /// Voxels labelled `label` in neither volume.
    pub tn: u64,
    /// Voxels labelled `label` in the reference volume only.
    pub fn_: u64,
}

impl ConfusionCounts {
    /// Number of voxels (`tp + fp + tn + fn`).
    pub fn size(&self) -> u64 {
        self.tp + self.fp + self.tn + self.fn_
    }
    /// No voxel of the label in the test volume (nnU-Net's `test_empty`).
    pub fn test_empty(&self) -> bool {
        self.tp + self.fp == 0
    }
    /// Every voxel of the test volume has the label (nnU-Net's `test_full`).
    pub fn test_full(&self) -> bool {
        self.tp + self.fp == self.size()
    }
    /// No voxel of the label in the reference volume (nnU-Net's `reference_empty`).
    pub fn reference_empty(&self) -> bool {
        self.tp + self.fn_ == 0
    }
    /// Every voxel of the reference volume has the label (nnU-Net's `reference_full`).
    pub fn reference_full(&self) -> bool {
        self.tp + self.fn_ == self.size()
    }
}

/// An integer voxel type a label volume can hold.
///
/// 8- and 16-bit types map labels through a lookup table; wider types search the (short) label list.
pub trait LabelValue: Copy + Send + Sync + PartialEq + 'static {
    /// The value as an `i64` (labels are compared as `i64`).
    fn to_i64(self) -> i64;
    /// Index into a 65536-entry lookup table for 8/16-bit types; `None` for wider types.
    fn lut_key(self) -> Option<usize>;
}

macro_rules! label_value {
    ($t:ty, lut) => {
        impl LabelValue for $t {
            #[inline(always)]
            fn to_i64(self) -> i64 {
                self as i64
            }
            #[inline(always)]
            fn lut_key(self) -> Option<usize> {
                // Reinterpret the bits so that signed values also land in 0..65536.
                Some((self as i64 as u64 & 0xffff) as usize)
            }
        }
    };
    ($t:ty, search) => {
        impl LabelValue for $t {
            #[inline(always)]
            fn to_i64(self) -> i64 {
                self as i64
            }
            #[inline(always)]
            fn lut_key(self) -> Option<usize> {
                None
            }
        }
    };
}
label_value!(u8, lut);
label_value!(i8, lut);
label_value!(u16, lut);
label_value!(i16, lut);
label_value!(u32, search);
label_value!(i32, search);
label_value!(u64, search);
label_value!(i64, search);

/// The most labels one call evaluates (every value of a `u8` volume).
pub const MAX_LABELS: usize = 256;

/// Maps a voxel value to its position in the label list, or to `labels.len()` ("other").
pub(crate) struct LabelIndex {
    lut: Option<Vec<u16>>,
    labels: Vec<i64>,
}

impl LabelIndex {
    pub(crate) fn new<T: LabelValue>(labels: &[i64], sample: Option<T>) -> Self {
        let other = labels.len() as u16;
        let lut = sample.and_then(|s| s.lut_key()).map(|_| {
            let mut lut = vec![other; 65536];
            for (i, &l) in labels.iter().enumerate().rev() {
                // The first occurrence of a repeated label wins, like the linear search below.
                if let Some(key) = key_of::<T>(l) {
                    lut[key] = i as u16;
                }
            }
            lut
        });
        LabelIndex {
            lut,
            labels: labels.to_vec(),
        }
    }

    #[inline(always)]
    pub(crate) fn index<T: LabelValue>(&self, v: T) -> usize {
        match (&self.lut, v.lut_key()) {
            (Some(lut), Some(key)) => lut[key] as usize,
            _ => {
                let v = v.to_i64();
                self.labels
                    .iter()
                    .position(|&l| l == v)
                    .unwrap_or(self.labels.len())
            }
        }
    }
}

/// The lookup key a label value would have in a volume of type `T`, if `T` can hold it at all.
fn key_of<T: LabelValue>(label: i64) -> Option<usize> {
    let (lo, hi) = type_range::<T>();
    if label < lo || label > hi {
        return None;
    }
    Some((label as u64 & 0xffff) as usize)
}

fn type_range<T: LabelValue>() -> (i64, i64) {
    use std::any::TypeId;
    let id = TypeId::of::<T>();
    if id == TypeId::of::<u8>() {
        (0, u8::MAX as i64)
    } else if id == TypeId::of::<i8>() {
        (i8::MIN as i64, i8::MAX as i64)
    } else if id == TypeId::of::<u16>() {
        (0, u16::MAX as i64)
    } else if id == TypeId::of::<i16>() {
        (i16::MIN as i64, i16::MAX as i64)
    } else {
        (i64::MIN, i64::MAX)
    }
}

/// Per-label confusion counts of `test` against `reference`, for each entry of `labels` (in that order).
///
/// One parallel pass (rayon over z slabs) fills a joint histogram of (reference index, test index)
/// where the index is the position in `labels` or "other"; the per-label counts are read off it. No
/// per-label boolean volume is made. Equivalent to nnU-Net 1.7.1's `Evaluator.evaluate`, which builds
/// `ConfusionMatrix(test == l, reference == l)` for every label `l`.
///
/// Errors: [`MetricsError::ShapeMismatch`] when the shapes differ, [`MetricsError::TooManyLabels`] for more
/// than [`MAX_LABELS`] labels.
pub fn confusion_counts<T: LabelValue>(
    reference: ArrayView3<'_, T>,
    test: ArrayView3<'_, T>,
    labels: &[i64],
) -> Result<Vec<ConfusionCounts>, MetricsError> {
    if reference.shape() != test.shape() {
        return Err(MetricsError::ShapeMismatch {
            reference: reference.shape().to_vec(),
            test: test.shape().to_vec(),
        });
    }
    if labels.len() > MAX_LABELS {
        return Err(MetricsError::TooManyLabels(labels.len()));
    }
    let k = labels.len() + 1;
    let index = LabelIndex::new::<T>(labels, reference.iter().next().copied());
    let hist = reference
        .axis_iter(Axis(0))
        .into_par_iter()
        .zip(test.axis_iter(Axis(0)))
        .fold(
            || vec![0u64; k * k],
            |mut hist, (r, t)| {
                match (r.as_slice(), t.as_slice()) {
                    (Some(r), Some(t)) => histogram_slices(r, t, &index, k, &mut hist),
                    _ => Zip::from(r).and(t).for_each(|&r, &t| {
                        hist[index.index(r) * k + index.index(t)] += 1;
                    }),
                }
                hist
            },
        )
        .reduce(
            || vec![0u64; k * k],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                a
            },
        );
    let total: u64 = hist.iter().sum();
    Ok((0..labels.len())
        .map(|l| {
            let tp = hist[l * k + l];
            let test_pos: u64 = (0..k).map(|r| hist[r * k + l]).sum();
            let ref_pos: u64 = (0..k).map(|t| hist[l * k + t]).sum();
            let fp = test_pos - tp;
            let fn_ = ref_pos - tp;
            ConfusionCounts {
                tp,
                fp,
                fn_,
                tn: total - tp - fp - fn_,
            }
        })
        .collect())
}

/// Histogram of two contiguous rows/slabs. Runs of 8 voxels where both volumes hold the same single value
/// (mostly background) are counted at once, which is the common case in segmentations.
#[inline]
fn histogram_slices<T: LabelValue>(
    r: &[T],
    t: &[T],
    index: &LabelIndex,
    k: usize,
    hist: &mut [u64],
) {
    const RUN: usize = 8;
    let mut rc = r.chunks_exact(RUN);
    let mut tc = t.chunks_exact(RUN);
    for (rb, tb) in (&mut rc).zip(&mut tc) {
        let v = rb[0];
        if rb == tb && rb.iter().all(|&x| x == v) {
            let i = index.index(v);
            hist[i * k + i] += RUN as u64;
        } else {
            for (&a, &b) in rb.iter().zip(tb) {
                hist[index.index(a) * k + index.index(b)] += 1;
            }
        }
    }
    for (&a, &b) in rc.remainder().iter().zip(tc.remainder()) {
        hist[index.index(a) * k + index.index(b)] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn naive(r: &Array3<i32>, t: &Array3<i32>, l: i32) -> ConfusionCounts {
        let mut c = ConfusionCounts::default();
        for (&a, &b) in r.iter().zip(t.iter()) {
            match (a == l, b == l) {
                (true, true) => c.tp += 1,
                (false, true) => c.fp += 1,
                (true, false) => c.fn_ += 1,
                (false, false) => c.tn += 1,
            }
        }
        c
    }

    #[test]
    fn matches_naive_counting_for_all_types_and_layouts() {
        // A deterministic pseudo-random pair with labels 0..5, including values not in the label list.
        let mut s = 12345u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % 6) as i32
        };
        let r = Array3::from_shape_fn((7, 9, 13), |(z, _, _)| if z < 2 { 0 } else { next() });
        let t = Array3::from_shape_fn((7, 9, 13), |(z, _, _)| if z < 2 { 0 } else { next() });
        let labels = [0i64, 1, 2, 3, 7];
        let want: Vec<_> = labels.iter().map(|&l| naive(&r, &t, l as i32)).collect();
        assert_eq!(confusion_counts(r.view(), t.view(), &labels).unwrap(), want);
        let (r8, t8) = (r.mapv(|v| v as u8), t.mapv(|v| v as u8));
        assert_eq!(
            confusion_counts(r8.view(), t8.view(), &labels).unwrap(),
            want
        );
        let (r16, t16) = (r.mapv(|v| v as i16), t.mapv(|v| v as i16));
        assert_eq!(
            confusion_counts(r16.view(), t16.view(), &labels).unwrap(),
            want
        );
        // Non-contiguous views take the generic path.
        let (rp, tp) = (r8.view().reversed_axes(), t8.view().reversed_axes());
        assert_eq!(confusion_counts(rp, tp, &labels).unwrap(), want);
    }

    #[test]
    fn negative_labels_and_out_of_range_labels() {
        let r = Array3::from_shape_vec((1, 1, 4), vec![-1i8, -1, 0, 5]).unwrap();
        let t = Array3::from_shape_vec((1, 1, 4), vec![-1i8, 0, 0, 5]).unwrap();
        let c = confusion_counts(r.view(), t.view(), &[-1, 300]).unwrap();
        assert_eq!(
            c[0],
            ConfusionCounts {
                tp: 1,
                fp: 0,
                fn_: 1,
                tn: 2
            }
        );
        assert_eq!(
            c[1],
            ConfusionCounts {
                tp: 0,
                fp: 0,
                fn_: 0,
                tn: 4
            }
        );
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let r = Array3::<u8>::zeros((2, 2, 2));
        let t = Array3::<u8>::zeros((2, 2, 3));
        assert!(matches!(
            confusion_counts(r.view(), t.view(), &[0]),
            Err(MetricsError::ShapeMismatch { .. })
        ));
    }
}
