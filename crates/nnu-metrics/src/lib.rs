//! nnU-Net v1 evaluation: confusion counts, nnU-Net's 13 default metrics, `summary.json`, and surface
//! metrics (HD95, ASSD, normalised surface Dice) with voxel spacing.
//!
//! The reference is nnU-Net 1.7.1's `nnunet/evaluation/evaluator.py` (`Evaluator`, `aggregate_scores`) and
//! `metrics.py`: per label `l`, confusion counts of `test == l` against `reference == l`
//! ([`confusion_counts`], one parallel pass for all labels), the default metrics with their NaN rules
//! ([`default_metrics`]), and the `summary.json` file with its `np.nanmean` means, key order, `NaN`
//! spelling, int/float types and `id` hash ([`summary_text`], [`write_summary`]). Surface metrics follow
//! MedPy 0.5.2 (see [`surface`] for the conventions and the empty-mask rules). [`evaluate`] holds the
//! folder-level pieces `nnu-evaluate` composes: matching cases by file name, geometry checks, per-case
//! evaluation, labels absent from a case, and the per-class table.
//!
//! ```
//! use ndarray::Array3;
//! use nnu_metrics::{case_scores, confusion_counts, summary_text, SummaryMeta};
//!
//! let reference = Array3::<u8>::from_shape_fn((4, 5, 6), |(z, _, _)| u8::from(z >= 2));
//! let test = Array3::<u8>::from_shape_fn((4, 5, 6), |(z, y, _)| u8::from(z >= 2 && y > 0));
//! let counts = confusion_counts(reference.view(), test.view(), &[0, 1]).unwrap();
//! assert_eq!((counts[1].tp, counts[1].fn_), (48, 12));
//! let case = case_scores(&[0, 1], &counts, None, Some("pred/a.nii.gz"), Some("ref/a.nii.gz"));
//! assert_eq!(case.labels[1].metrics[1].0, "Dice");
//! let meta = SummaryMeta { timestamp: "2026-01-01 00:00:00".into(), ..SummaryMeta::default() };
//! let text = summary_text(&[case], &meta);
//! assert!(text.starts_with("{\n    \"author\": \"Fabian\",\n"));
//! ```
//!
//! What it deliberately does not do: read image files (the caller reads label volumes, e.g. with
//! `nnu-volume`), evaluate merged label groups (nnU-Net's tuple labels / regions), nnU-Net's optional
//! metrics other than the surface ones here, or DeepMind's surfel-area weighting.

#![warn(missing_docs)]

mod confusion;
pub mod evaluate;
mod json;
mod md5;
mod metrics;
mod summary;
pub mod surface;

use std::path::PathBuf;

pub use confusion::{confusion_counts, ConfusionCounts, LabelValue, MAX_LABELS};
pub use json::{py_float_repr, JsonValue};
pub use md5::md5_hex;
pub use metrics::{
    accuracy, default_metrics, dice, false_discovery_rate, false_negative_rate,
    false_omission_rate, false_positive_rate, jaccard, negative_predictive_value, precision,
    recall, total_positives_reference, total_positives_test, true_negative_rate, MetricValue,
    DEFAULT_METRICS,
};
pub use summary::{
    mean_scores, nanmean, numpy_sum, python_timestamp_now, summary_json, summary_text,
    write_atomic, write_summary, CaseScores, LabelScores, SummaryMeta,
};
pub use surface::{surface_metrics, DirectedDistances, SurfaceOptions, SurfaceScores};

/// `summary.json` key of HD95 (nnU-Net's name in `ALL_METRICS`).
pub const HD95_KEY: &str = "Hausdorff Distance 95";
/// `summary.json` key of ASSD (nnU-Net's name in `ALL_METRICS`).
pub const ASSD_KEY: &str = "Avg. Symmetric Surface Distance";
/// `summary.json` key of the normalised surface Dice (not an nnU-Net metric; tolerance recorded by the
/// caller, e.g. in `description`).
pub const NSD_KEY: &str = "Normalized Surface Dice";

/// Errors of this crate; each names the offending value or file.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The two volumes have different shapes.
    #[error("shape mismatch: reference {reference:?}, test {test:?}")]
    ShapeMismatch {
        /// Reference shape (z, y, x).
        reference: Vec<usize>,
        /// Test shape (z, y, x).
        test: Vec<usize>,
    },
    /// More labels than [`MAX_LABELS`].
    #[error("{0} labels requested; at most 256 are supported")]
    TooManyLabels(usize),
    /// A voxel spacing that is not finite and positive.
    #[error("invalid voxel spacing {0:?} (must be finite and > 0)")]
    InvalidSpacing([f64; 3]),
    /// A surface connectivity other than 1, 2 or 3.
    #[error("invalid surface connectivity {0} (must be 1, 2 or 3)")]
    InvalidConnectivity(u8),
    /// Reference and prediction spacings differ by more than the tolerance.
    #[error("spacing mismatch: reference {reference:?}, test {test:?} (tolerance {tolerance} mm)")]
    SpacingMismatch {
        /// Reference spacing.
        reference: [f64; 3],
        /// Test spacing.
        test: [f64; 3],
        /// Allowed absolute difference per axis, mm.
        tolerance: f64,
    },
    /// The prediction is placed differently in space from its reference (origin or direction).
    #[error("{what} differs from the reference's: reference {reference:?}, test {test:?} (tolerance {tolerance}); \
             the prediction is not in the reference's frame")]
    PlacementMismatch {
        /// `origin` (mm) or `direction` (cosines).
        what: &'static str,
        /// The reference's values.
        reference: Vec<f64>,
        /// The prediction's values.
        test: Vec<f64>,
        /// Allowed absolute difference per element.
        tolerance: f64,
    },
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// The scores of one case as nnU-Net's `Evaluator.evaluate` produces them: for each label (keyed
/// `str(label)`), the 13 default metrics sorted by name, followed, when `surface` is given, by
/// [`HD95_KEY`], [`ASSD_KEY`] and [`NSD_KEY`] (nnU-Net appends advanced metrics after the sorted defaults).
///
/// `labels`, `counts` and `surface` are parallel slices (as returned by [`confusion_counts`] and
/// [`surface_metrics`] for the same labels); `surface` entries may be `None` for labels without them.
pub fn case_scores(
    labels: &[i64],
    counts: &[ConfusionCounts],
    surface: Option<&[Option<SurfaceScores>]>,
    test: Option<&str>,
    reference: Option<&str>,
) -> CaseScores {
    let labels = labels
        .iter()
        .zip(counts)
        .enumerate()
        .map(|(i, (label, c))| {
            let mut metrics: Vec<(String, MetricValue)> = default_metrics(c)
                .iter()
                .map(|(n, v)| (n.to_string(), *v))
                .collect();
            if let Some(Some(s)) = surface.and_then(|s| s.get(i)) {
                metrics.push((HD95_KEY.to_string(), MetricValue::Float(s.hd95)));
                metrics.push((ASSD_KEY.to_string(), MetricValue::Float(s.assd)));
                metrics.push((NSD_KEY.to_string(), MetricValue::Float(s.nsd)));
            }
            LabelScores {
                label: label.to_string(),
                metrics,
            }
        })
        .collect();
    CaseScores {
        labels,
        test: test.map(str::to_string),
        reference: reference.map(str::to_string),
    }
}
