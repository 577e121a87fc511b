//! Folder evaluation building blocks (what nnU-Net 1.7.1's `evaluate_folder` / `aggregate_scores` do
//! around the metrics): matching cases by file name, geometry checks, one case's counts and surface
//! scores, assembling `summary.json` entries over a label set, and the per-class table.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ndarray::{ArrayView3, Axis};
use rayon::prelude::*;

use crate::{
    case_scores, confusion_counts, surface_metrics, CaseScores, ConfusionCounts, LabelScores,
    LabelValue, MetricValue, MetricsError, SurfaceOptions, SurfaceScores,
};

/// A reference/prediction pair with the same file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasePair {
    /// The file name shared by both (e.g. `liver_3.nii.gz`).
    pub name: String,
    /// The reference segmentation.
    pub reference: PathBuf,
    /// The predicted segmentation (nnU-Net's "test").
    pub test: PathBuf,
}

/// The result of [`match_cases`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CaseList {
    /// Cases present in both folders, sorted by name.
    pub pairs: Vec<CasePair>,
    /// Reference cases (or requested cases) without a prediction.
    pub missing_predictions: Vec<String>,
    /// Predictions without a reference (or requested cases without a reference).
    pub missing_references: Vec<String>,
}

const SUFFIXES: [&str; 2] = [".nii.gz", ".nii"];

fn nifti_names(dir: &Path) -> Result<BTreeSet<String>, MetricsError> {
    let io = |source| MetricsError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if SUFFIXES.iter().any(|s| name.ends_with(s)) && entry.path().is_file() {
            names.insert(name);
        }
    }
    Ok(names)
}

/// Pairs the NIfTI files (`.nii.gz`, `.nii`) of `ref_dir` and `pred_dir` by file name, as nnU-Net's
/// `evaluate_folder` does (it asserts both sets are equal; here the differences are returned).
///
/// With `only` (case identifiers such as a fold's `val` list from `splits_final.pkl`), exactly those cases
/// are paired (`<id>.nii.gz`, else `<id>.nii`); requested cases missing on a side are reported, and files
/// not requested are ignored.
pub fn match_cases(
    ref_dir: &Path,
    pred_dir: &Path,
    only: Option<&[String]>,
) -> Result<CaseList, MetricsError> {
    let refs = nifti_names(ref_dir)?;
    let preds = nifti_names(pred_dir)?;
    let mut list = CaseList::default();
    let mut push = |name: String, in_ref: bool, in_pred: bool| match (in_ref, in_pred) {
        (true, true) => list.pairs.push(CasePair {
            reference: ref_dir.join(&name),
            test: pred_dir.join(&name),
            name,
        }),
        (true, false) => list.missing_predictions.push(name),
        (false, true) => list.missing_references.push(name),
        (false, false) => {
            list.missing_references.push(name.clone());
            list.missing_predictions.push(name);
        }
    };
    match only {
        Some(ids) => {
            for id in ids {
                let name = SUFFIXES
                    .iter()
                    .map(|s| format!("{id}{s}"))
                    .find(|n| refs.contains(n) || preds.contains(n))
                    .unwrap_or_else(|| format!("{id}.nii.gz"));
                let (r, p) = (refs.contains(&name), preds.contains(&name));
                push(name, r, p);
            }
            list.pairs.sort_by(|a, b| a.name.cmp(&b.name));
        }
        None => {
            for name in refs.union(&preds) {
                push(name.clone(), refs.contains(name), preds.contains(name));
            }
        }
    }
    Ok(list)
}

/// Checks that a prediction can be scored against its reference: same array shape (z, y, x), and spacing
/// (any axis order, as long as both use the same) equal within `spacing_tolerance` mm per axis.
pub fn check_geometry(
    reference_shape: [usize; 3],
    test_shape: [usize; 3],
    reference_spacing: [f64; 3],
    test_spacing: [f64; 3],
    spacing_tolerance: f64,
) -> Result<(), MetricsError> {
    if reference_shape != test_shape {
        return Err(MetricsError::ShapeMismatch {
            reference: reference_shape.to_vec(),
            test: test_shape.to_vec(),
        });
    }
    let off = reference_spacing
        .iter()
        .zip(&test_spacing)
        .any(|(a, b)| (a - b).abs() > spacing_tolerance);
    if off {
        return Err(MetricsError::SpacingMismatch {
            reference: reference_spacing,
            test: test_spacing,
            tolerance: spacing_tolerance,
        });
    }
    Ok(())
}

/// Checks that a prediction lies where its reference lies: origins equal within `origin_tolerance` mm per
/// axis, direction cosines within `direction_tolerance`. nnU-Net's evaluation compares arrays only, so a
/// prediction shifted by 50 mm or flipped would be scored as if it were aligned; here it is an error
/// (a caller may report it as a warning instead).
pub fn check_placement(
    reference_origin: [f64; 3],
    test_origin: [f64; 3],
    reference_direction: [f64; 9],
    test_direction: [f64; 9],
    origin_tolerance: f64,
    direction_tolerance: f64,
) -> Result<(), MetricsError> {
    let off = |a: &[f64], b: &[f64], tol: f64| {
        a.iter()
            .zip(b)
            .any(|(x, y)| (x - y).abs() > tol || (x - y).is_nan())
    };
    if off(&reference_origin, &test_origin, origin_tolerance) {
        return Err(MetricsError::PlacementMismatch {
            what: "origin",
            reference: reference_origin.to_vec(),
            test: test_origin.to_vec(),
            tolerance: origin_tolerance,
        });
    }
    if off(&reference_direction, &test_direction, direction_tolerance) {
        return Err(MetricsError::PlacementMismatch {
            what: "direction",
            reference: reference_direction.to_vec(),
            test: test_direction.to_vec(),
            tolerance: direction_tolerance,
        });
    }
    Ok(())
}

/// The values occurring in either volume, sorted (what nnU-Net's `construct_labels` takes:
/// `np.union1d(np.unique(test), np.unique(reference))`).
pub fn present_labels<T: LabelValue>(
    reference: ArrayView3<'_, T>,
    test: ArrayView3<'_, T>,
) -> Vec<i64> {
    let collect = |v: ArrayView3<'_, T>| -> BTreeSet<i64> {
        v.axis_iter(Axis(0))
            .into_par_iter()
            .fold(BTreeSet::new, |mut set, plane| {
                let mut last: Option<T> = None;
                for &x in plane.iter() {
                    // Label volumes are long runs of one value: skip repeats cheaply.
                    if last != Some(x) {
                        set.insert(x.to_i64());
                        last = Some(x);
                    }
                }
                set
            })
            .reduce(BTreeSet::new, |mut a, b| {
                a.extend(b);
                a
            })
    };
    let mut all = collect(reference);
    all.extend(collect(test));
    all.into_iter().collect()
}

/// One case's numbers: confusion counts for the evaluated labels and, when asked, surface scores.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseEvaluation {
    /// Number of voxels (the counts of a label absent from the case are `tn = size`).
    pub size: u64,
    /// `(label, counts)` for each evaluated label.
    pub counts: Vec<(i64, ConfusionCounts)>,
    /// `(label, scores)` for each label with surface metrics.
    pub surface: Vec<(i64, SurfaceScores)>,
}

/// Counts (and surface metrics) of one case.
///
/// `labels`: the labels to evaluate, or `None` for the labels present in either volume
/// ([`present_labels`]). `surface`: spacing in (z, y, x) mm (nnU-Net takes the prediction's) and options;
/// surface metrics are computed for the evaluated labels except 0 (the background's surface is the
/// foreground's plus the array border; its distance transform would span the whole volume).
pub fn evaluate_case<T: LabelValue>(
    reference: ArrayView3<'_, T>,
    test: ArrayView3<'_, T>,
    labels: Option<&[i64]>,
    surface: Option<([f64; 3], &SurfaceOptions)>,
) -> Result<CaseEvaluation, MetricsError> {
    let labels = match labels {
        Some(l) => l.to_vec(),
        None => present_labels(reference, test),
    };
    let counts = confusion_counts(reference, test, &labels)?;
    let surface = match surface {
        Some((spacing, options)) => {
            let fg: Vec<i64> = labels.iter().copied().filter(|&l| l != 0).collect();
            let scores = surface_metrics(reference, test, &fg, spacing, options)?;
            fg.into_iter().zip(scores).collect()
        }
        None => Vec::new(),
    };
    Ok(CaseEvaluation {
        size: reference.len() as u64,
        counts: labels.into_iter().zip(counts).collect(),
        surface,
    })
}

/// The labels evaluated in any case, sorted.
pub fn union_labels(cases: &[CaseEvaluation]) -> Vec<i64> {
    let set: BTreeSet<i64> = cases
        .iter()
        .flat_map(|c| c.counts.iter().map(|(l, _)| *l))
        .collect();
    set.into_iter().collect()
}

/// The `summary.json` entry of one case over `labels`: a label not evaluated in the case counts as absent
/// from both volumes (`tn = size`), its surface scores (when `with_surface`, labels other than 0) as NaN
/// (the empty-mask rule).
pub fn case_entry(
    case: &CaseEvaluation,
    labels: &[i64],
    with_surface: bool,
    test: Option<&str>,
    reference: Option<&str>,
) -> CaseScores {
    let counts: Vec<ConfusionCounts> = labels
        .iter()
        .map(|l| {
            case.counts
                .iter()
                .find(|(k, _)| k == l)
                .map(|(_, c)| *c)
                .unwrap_or(ConfusionCounts {
                    tn: case.size,
                    ..ConfusionCounts::default()
                })
        })
        .collect();
    let nan = SurfaceScores {
        hd95: f64::NAN,
        assd: f64::NAN,
        nsd: f64::NAN,
    };
    let surface: Vec<Option<SurfaceScores>> = labels
        .iter()
        .map(|l| {
            (with_surface && *l != 0).then(|| {
                case.surface
                    .iter()
                    .find(|(k, _)| k == l)
                    .map(|(_, s)| *s)
                    .unwrap_or(nan)
            })
        })
        .collect();
    case_scores(
        labels,
        &counts,
        with_surface.then_some(surface.as_slice()),
        test,
        reference,
    )
}

/// A plain-text table of the per-class means: one row per label, one column per `(metric key, header)` in
/// `columns` that the labels have (values with 4 decimals, `NaN` as such, `-` where a label lacks it).
/// With `names` (label value -> name, e.g. from `dataset.json`), a `name` column follows the label.
pub fn mean_table(
    mean: &[LabelScores],
    columns: &[(&str, &str)],
    names: &std::collections::BTreeMap<i64, String>,
) -> String {
    let columns: Vec<(&str, &str)> = columns
        .iter()
        .copied()
        .filter(|(key, _)| mean.iter().any(|l| l.metrics.iter().any(|(n, _)| n == key)))
        .collect();
    let width = columns
        .iter()
        .map(|(_, h)| h.len().max(9))
        .collect::<Vec<_>>();
    let name_of = |label: &str| -> &str {
        label
            .parse::<i64>()
            .ok()
            .and_then(|v| names.get(&v))
            .map_or("", String::as_str)
    };
    let name_w = mean
        .iter()
        .map(|l| name_of(&l.label).chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let mut out = format!("{:>6}", "label");
    if !names.is_empty() {
        out.push_str(&format!("  {:<name_w$}", "name"));
    }
    for ((_, header), w) in columns.iter().zip(&width) {
        out.push_str(&format!("  {header:>w$}"));
    }
    out.push('\n');
    for label in mean {
        out.push_str(&format!("{:>6}", label.label));
        if !names.is_empty() {
            out.push_str(&format!("  {:<name_w$}", name_of(&label.label)));
        }
        for ((key, _), w) in columns.iter().zip(&width) {
            let cell = match label.metrics.iter().find(|(n, _)| n == key) {
                Some((_, MetricValue::Int(i))) => i.to_string(),
                Some((_, MetricValue::Float(f))) if f.is_nan() => "NaN".to_string(),
                Some((_, MetricValue::Float(f))) => format!("{f:.4}"),
                None => "-".to_string(),
            };
            out.push_str(&format!("  {cell:>w$}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn matches_by_name_and_reports_missing() {
        let dir = std::env::temp_dir().join(format!("nnu-metrics-match-{}", std::process::id()));
        let (r, p) = (dir.join("ref"), dir.join("pred"));
        std::fs::create_dir_all(&r).unwrap();
        std::fs::create_dir_all(&p).unwrap();
        for n in ["a.nii.gz", "b.nii.gz", "c.nii"] {
            std::fs::write(r.join(n), b"").unwrap();
        }
        for n in ["a.nii.gz", "c.nii", "d.nii.gz", "notes.txt"] {
            std::fs::write(p.join(n), b"").unwrap();
        }
        let list = match_cases(&r, &p, None).unwrap();
        let names: Vec<_> = list.pairs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a.nii.gz", "c.nii"]);
        assert_eq!(list.missing_predictions, ["b.nii.gz"]);
        assert_eq!(list.missing_references, ["d.nii.gz"]);
        let only = ["c".to_string(), "b".to_string(), "z".to_string()];
        let list = match_cases(&r, &p, Some(&only)).unwrap();
        assert_eq!(list.pairs.len(), 1);
        assert_eq!(list.missing_predictions, ["b.nii.gz", "z.nii.gz"]);
        assert_eq!(list.missing_references, ["z.nii.gz"]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            match_cases(&r, &p, None),
            Err(MetricsError::Io { .. })
        ));
    }

    #[test]
    fn geometry_checks() {
        assert!(check_geometry(
            [1, 2, 3],
            [1, 2, 3],
            [0.8, 0.8, 2.5],
            [0.8, 0.8, 2.5001],
            1e-3
        )
        .is_ok());
        assert!(matches!(
            check_geometry([1, 2, 3], [1, 2, 3], [0.8, 0.8, 2.5], [0.8, 0.8, 2.6], 1e-3),
            Err(MetricsError::SpacingMismatch { .. })
        ));
        assert!(matches!(
            check_geometry([1, 2, 3], [1, 3, 2], [1.0; 3], [1.0; 3], 1e-3),
            Err(MetricsError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn labels_absent_from_a_case_count_as_empty() {
        let r = Array3::from_shape_vec((1, 1, 4), vec![0u8, 1, 1, 0]).unwrap();
        let t = Array3::from_shape_vec((1, 1, 4), vec![0u8, 1, 0, 0]).unwrap();
        let ev = evaluate_case(
            r.view(),
            t.view(),
            None,
            Some(([1.0; 3], &SurfaceOptions::default())),
        )
        .unwrap();
        assert_eq!(present_labels(r.view(), t.view()), [0, 1]);
        let entry = case_entry(&ev, &[0, 1, 2], true, None, None);
        let two = &entry.labels[2];
        let get = |n: &str| two.metrics.iter().find(|(k, _)| k == n).unwrap().1;
        assert!(get("Dice").as_f64().is_nan());
        assert_eq!(get("True Negative Rate").as_f64(), 1.0);
        assert!(get(crate::HD95_KEY).as_f64().is_nan());
        assert!(entry.labels[0]
            .metrics
            .iter()
            .all(|(k, _)| k != crate::HD95_KEY));
        let mean = crate::mean_scores(&[entry]);
        let columns = [("Dice", "Dice"), (crate::HD95_KEY, "HD95")];
        let table = mean_table(&mean, &columns, &Default::default());
        assert!(table.lines().nth(2).unwrap().contains("0.6667"), "{table}");
        assert!(!table.contains("name"), "{table}");
        let names = [(1, "liver".to_string()), (2, "tumour".to_string())].into();
        let named = mean_table(&mean, &columns, &names);
        let rows: Vec<&str> = named.lines().collect();
        assert!(rows[0].contains("name"), "{named}");
        assert!(
            rows[2].contains("liver") && rows[2].contains("0.6667"),
            "{named}"
        );
        assert!(rows[3].contains("tumour"), "{named}");
    }
}
