//! nnU-Net v1's default metrics from confusion counts.
//!
//! Each function reproduces the function of the same meaning in nnU-Net 1.7.1's
//! `nnunet/evaluation/metrics.py` with `nan_for_nonexisting=True` (what `Evaluator` uses): the same formula,
//! the same NaN rule, and the same floating-point operations (counts are exact in `f64` below 2^53 voxels,
//! so `tp / (tp + fp)` rounds like Python's `int / int`). The `1 - x` metrics are computed as `1.0 - x`,
//! exactly as nnU-Net does, so they carry the same rounding (and NaN) as their complement.

use crate::ConfusionCounts;

/// Names of nnU-Net 1.7.1's `Evaluator.default_metrics`, sorted as `Evaluator.evaluate` sorts them
/// (`self.metrics.sort()`); these are the keys of every label entry in `summary.json`.
pub const DEFAULT_METRICS: [&str; 13] = [
    "Accuracy",
    "Dice",
    "False Discovery Rate",
    "False Negative Rate",
    "False Omission Rate",
    "False Positive Rate",
    "Jaccard",
    "Negative Predictive Value",
    "Precision",
    "Recall",
    "Total Positives Reference",
    "Total Positives Test",
    "True Negative Rate",
];

/// A metric value as nnU-Net stores it: Python `int` for the counts, `float` otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricValue {
    /// A count (`Total Positives Test`, `Total Positives Reference`), written without a decimal point.
    Int(u64),
    /// A ratio or distance; may be NaN.
    Float(f64),
}

impl MetricValue {
    /// The value as `f64` (what `np.nanmean` averages).
    pub fn as_f64(self) -> f64 {
        match self {
            MetricValue::Int(i) => i as f64,
            MetricValue::Float(f) => f,
        }
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    num as f64 / den as f64
}

/// `dice`: `2tp / (2tp + fp + fn)`; NaN when test and reference are both empty.
pub fn dice(c: &ConfusionCounts) -> f64 {
    if c.test_empty() && c.reference_empty() {
        return f64::NAN;
    }
    2.0 * c.tp as f64 / (2 * c.tp + c.fp + c.fn_) as f64
}

/// `jaccard`: `tp / (tp + fp + fn)`; NaN when test and reference are both empty.
pub fn jaccard(c: &ConfusionCounts) -> f64 {
    if c.test_empty() && c.reference_empty() {
        return f64::NAN;
    }
    ratio(c.tp, c.tp + c.fp + c.fn_)
}

/// `precision`: `tp / (tp + fp)`; NaN when the test is empty.
pub fn precision(c: &ConfusionCounts) -> f64 {
    if c.test_empty() {
        return f64::NAN;
    }
    ratio(c.tp, c.tp + c.fp)
}

/// `recall` (= `sensitivity`): `tp / (tp + fn)`; NaN when the reference is empty.
pub fn recall(c: &ConfusionCounts) -> f64 {
    if c.reference_empty() {
        return f64::NAN;
    }
    ratio(c.tp, c.tp + c.fn_)
}

/// `true_negative_rate` (= `specificity`): `tn / (tn + fp)`; NaN when the reference is full.
pub fn true_negative_rate(c: &ConfusionCounts) -> f64 {
    if c.reference_full() {
        return f64::NAN;
    }
    ratio(c.tn, c.tn + c.fp)
}

/// `accuracy`: `(tp + tn) / size`; never NaN except for an empty volume (where nnU-Net raises).
pub fn accuracy(c: &ConfusionCounts) -> f64 {
    ratio(c.tp + c.tn, c.size())
}

/// `false_positive_rate`: `1 - true_negative_rate` (NaN when the reference is full).
pub fn false_positive_rate(c: &ConfusionCounts) -> f64 {
    1.0 - true_negative_rate(c)
}

/// `false_omission_rate`: `fn / (fn + tn)`; NaN when the test is full.
pub fn false_omission_rate(c: &ConfusionCounts) -> f64 {
    if c.test_full() {
        return f64::NAN;
    }
    ratio(c.fn_, c.fn_ + c.tn)
}

/// `negative_predictive_value`: `1 - false_omission_rate` (NaN when the test is full).
pub fn negative_predictive_value(c: &ConfusionCounts) -> f64 {
    1.0 - false_omission_rate(c)
}

/// `false_negative_rate`: `1 - recall` (NaN when the reference is empty).
pub fn false_negative_rate(c: &ConfusionCounts) -> f64 {
    1.0 - recall(c)
}

/// `false_discovery_rate`: `1 - precision` (NaN when the test is empty).
pub fn false_discovery_rate(c: &ConfusionCounts) -> f64 {
    1.0 - precision(c)
}

/// `total_positives_test`: `tp + fp`.
pub fn total_positives_test(c: &ConfusionCounts) -> u64 {
    c.tp + c.fp
}

/// `total_positives_reference`: `tp + fn`.
pub fn total_positives_reference(c: &ConfusionCounts) -> u64 {
    c.tp + c.fn_
}

/// The 13 default metrics of nnU-Net 1.7.1's `Evaluator`, in [`DEFAULT_METRICS`] order (sorted by name).
pub fn default_metrics(c: &ConfusionCounts) -> [(&'static str, MetricValue); 13] {
    use MetricValue::{Float, Int};
    [
        ("Accuracy", Float(accuracy(c))),
        ("Dice", Float(dice(c))),
        ("False Discovery Rate", Float(false_discovery_rate(c))),
        ("False Negative Rate", Float(false_negative_rate(c))),
        ("False Omission Rate", Float(false_omission_rate(c))),
        ("False Positive Rate", Float(false_positive_rate(c))),
        ("Jaccard", Float(jaccard(c))),
        (
            "Negative Predictive Value",
            Float(negative_predictive_value(c)),
        ),
        ("Precision", Float(precision(c))),
        ("Recall", Float(recall(c))),
        (
            "Total Positives Reference",
            Int(total_positives_reference(c)),
        ),
        ("Total Positives Test", Int(total_positives_test(c))),
        ("True Negative Rate", Float(true_negative_rate(c))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sorted_like_python() {
        let mut sorted = DEFAULT_METRICS;
        sorted.sort();
        assert_eq!(sorted, DEFAULT_METRICS);
        let c = ConfusionCounts {
            tp: 1,
            fp: 2,
            tn: 3,
            fn_: 4,
        };
        let names: Vec<_> = default_metrics(&c).iter().map(|(n, _)| *n).collect();
        assert_eq!(names, DEFAULT_METRICS);
    }

    #[test]
    fn nan_rules() {
        // Label absent from both volumes: only Dice/Jaccard/Precision/Recall-derived values are NaN.
        let absent = ConfusionCounts {
            tp: 0,
            fp: 0,
            tn: 10,
            fn_: 0,
        };
        assert!(dice(&absent).is_nan() && jaccard(&absent).is_nan());
        assert!(precision(&absent).is_nan() && recall(&absent).is_nan());
        assert_eq!(true_negative_rate(&absent), 1.0);
        assert_eq!(false_omission_rate(&absent), 0.0);
        // Label everywhere in both: specificity and false omission rate are undefined.
        let full = ConfusionCounts {
            tp: 10,
            fp: 0,
            tn: 0,
            fn_: 0,
        };
        assert!(true_negative_rate(&full).is_nan() && false_positive_rate(&full).is_nan());
        assert!(false_omission_rate(&full).is_nan() && negative_predictive_value(&full).is_nan());
        assert_eq!(dice(&full), 1.0);
    }
}
