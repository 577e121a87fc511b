//! nnU-Net's `summary.json`: per-case scores, `np.nanmean` means, and the file layout of
//! nnU-Net 1.7.1's `evaluation.evaluator.aggregate_scores`.

use std::path::Path;

use crate::json::JsonValue;
use crate::md5::md5_hex;
use crate::{MetricValue, MetricsError};

/// The scores of one label in one case: `(metric name, value)` pairs in the order they were computed.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelScores {
    /// The label's key in `summary.json`: `str(label)` (e.g. `"1"`).
    pub label: String,
    /// `(metric name, value)` pairs; nnU-Net's default metrics come sorted by name.
    pub metrics: Vec<(String, MetricValue)>,
}

/// The scores of one case (one entry of `results.all`).
#[derive(Debug, Clone, PartialEq)]
pub struct CaseScores {
    /// One entry per evaluated label, in label order.
    pub labels: Vec<LabelScores>,
    /// The prediction's path as nnU-Net records it (`"test"`), if known.
    pub test: Option<String>,
    /// The reference's path (`"reference"`), if known.
    pub reference: Option<String>,
}

/// The descriptive fields of `summary.json`. Defaults are `aggregate_scores`' defaults
/// (`author` `"Fabian"`, the rest empty) and the current time.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryMeta {
    /// `json_name`.
    pub name: String,
    /// `json_description`.
    pub description: String,
    /// `json_author`.
    pub author: String,
    /// `json_task`.
    pub task: String,
    /// `str(datetime.today())`, e.g. `2026-11-27 01:02:03.456789`.
    pub timestamp: String,
}

impl Default for SummaryMeta {
    fn default() -> Self {
        SummaryMeta {
            name: String::new(),
            description: String::new(),
            author: "Fabian".to_string(),
            task: String::new(),
            timestamp: python_timestamp_now(),
        }
    }
}

/// The current time as Python's `str(datetime.today())` spells it, in UTC (nnU-Net writes local time;
/// this crate has no time-zone database).
pub fn python_timestamp_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let micros = now.subsec_micros();
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, d) = civil_from_days(days);
    let base = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    );
    // `datetime.__str__` omits the microseconds when they are zero.
    if micros == 0 {
        base
    } else {
        format!("{base}.{micros:06}")
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `np.sum` of a contiguous float64 vector: NumPy's pairwise summation ([`nnu_numerics::pairwise_sum`]),
/// started from the identity 0.0, so that means agree with NumPy to the last bit.
pub fn numpy_sum(values: &[f64]) -> f64 {
    0.0 + nnu_numerics::pairwise_sum(values)
}

/// `float(np.nanmean(values))`: NaNs are replaced by 0 for the (pairwise) sum and excluded from the count;
/// NaN when every value is NaN or there are none.
pub fn nanmean(values: &[f64]) -> f64 {
    let count = values.iter().filter(|v| !v.is_nan()).count();
    if count == 0 {
        return f64::NAN;
    }
    let zeroed: Vec<f64> = values
        .iter()
        .map(|&v| if v.is_nan() { 0.0 } else { v })
        .collect();
    numpy_sum(&zeroed) / count as f64
}

/// `results.mean` of `aggregate_scores` (with `nanmean=True`): for each label and metric, in order of first
/// appearance, the `np.nanmean` over the cases that have it, as a float.
pub fn mean_scores(cases: &[CaseScores]) -> Vec<LabelScores> {
    // (label, [(metric, values over cases)]) in order of first appearance, like nnU-Net's OrderedDicts.
    type PerMetric = Vec<(String, Vec<f64>)>;
    let mut collected: Vec<(String, PerMetric)> = Vec::new();
    for case in cases {
        for ls in &case.labels {
            let pos = match collected.iter().position(|(l, _)| *l == ls.label) {
                Some(p) => p,
                None => {
                    collected.push((ls.label.clone(), Vec::new()));
                    collected.len() - 1
                }
            };
            let metrics = &mut collected[pos].1;
            for (name, value) in &ls.metrics {
                match metrics.iter_mut().find(|(n, _)| n == name) {
                    Some((_, v)) => v.push(value.as_f64()),
                    None => metrics.push((name.clone(), vec![value.as_f64()])),
                }
            }
        }
    }
    collected
        .into_iter()
        .map(|(label, metrics)| LabelScores {
            label,
            metrics: metrics
                .into_iter()
                .map(|(name, values)| (name, MetricValue::Float(nanmean(&values))))
                .collect(),
        })
        .collect()
}

fn label_object(labels: &[LabelScores]) -> Vec<(String, JsonValue)> {
    labels
        .iter()
        .map(|ls| {
            let metrics = ls
                .metrics
                .iter()
                .map(|(name, v)| {
                    let v = match *v {
                        MetricValue::Int(i) => JsonValue::Int(i as i64),
                        MetricValue::Float(f) => JsonValue::Float(f),
                    };
                    (name.clone(), v)
                })
                .collect();
            (ls.label.clone(), JsonValue::Object(metrics))
        })
        .collect()
}

/// The whole `summary.json` document, with keys in nnU-Net's insertion order and the `id` computed as
/// nnU-Net does (`md5(json.dumps(json_dict))[:12]` before `id` is added). With the same cases, paths and
/// timestamp it hashes to the same `id` as nnU-Net 1.7.1.
pub fn summary_json(cases: &[CaseScores], meta: &SummaryMeta) -> JsonValue {
    let all = cases
        .iter()
        .map(|case| {
            let mut entry = label_object(&case.labels);
            if let Some(t) = &case.test {
                entry.push(("test".to_string(), JsonValue::Str(t.clone())));
            }
            if let Some(r) = &case.reference {
                entry.push(("reference".to_string(), JsonValue::Str(r.clone())));
            }
            JsonValue::Object(entry)
        })
        .collect();
    let results = JsonValue::Object(vec![
        ("all".to_string(), JsonValue::Array(all)),
        (
            "mean".to_string(),
            JsonValue::Object(label_object(&mean_scores(cases))),
        ),
    ]);
    let mut doc = vec![
        ("name".to_string(), JsonValue::Str(meta.name.clone())),
        (
            "description".to_string(),
            JsonValue::Str(meta.description.clone()),
        ),
        (
            "timestamp".to_string(),
            JsonValue::Str(meta.timestamp.clone()),
        ),
        ("task".to_string(), JsonValue::Str(meta.task.clone())),
        ("author".to_string(), JsonValue::Str(meta.author.clone())),
        ("results".to_string(), results),
    ];
    let id = md5_hex(
        JsonValue::Object(doc.clone())
            .to_python_compact()
            .as_bytes(),
    );
    doc.push(("id".to_string(), JsonValue::Str(id[..12].to_string())));
    JsonValue::Object(doc)
}

/// The text of `summary.json` exactly as `save_json` (`json.dump(sort_keys=True, indent=4)`) writes it.
pub fn summary_text(cases: &[CaseScores], meta: &SummaryMeta) -> String {
    summary_json(cases, meta).to_python_indented()
}

/// Writes `summary.json` atomically (a temporary file in the same folder, then a rename).
pub fn write_summary(
    path: &Path,
    cases: &[CaseScores],
    meta: &SummaryMeta,
) -> Result<(), MetricsError> {
    write_atomic(path, summary_text(cases, meta).as_bytes())
}

/// Writes `bytes` to `path` atomically and durably ([`nnu_fsio::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), MetricsError> {
    nnu_fsio::write_atomic(path, bytes).map_err(|e| {
        let (path, source) = e.into_parts();
        MetricsError::Io { path, source }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanmean_rules() {
        assert!(nanmean(&[]).is_nan());
        assert!(nanmean(&[f64::NAN, f64::NAN]).is_nan());
        assert_eq!(nanmean(&[1.0, f64::NAN, 2.0]), 1.5);
    }

    #[test]
    fn pairwise_sum_matches_numpy() {
        // np.sum(np.arange(1, 301) / 7) and np.sum(np.full(200, 0.1)), from NumPy 2.4.
        let a: Vec<f64> = (1..=300).map(|i| i as f64 / 7.0).collect();
        assert_eq!(numpy_sum(&a).to_bits(), 6450.0f64.to_bits());
        let b = vec![0.1f64; 200];
        // A sequential sum would give 20.000000000000004.
        assert_eq!(py(numpy_sum(&b)), "20.0");
    }

    fn py(x: f64) -> String {
        crate::json::py_float_repr(x)
    }

    #[test]
    fn timestamp_format() {
        let t = python_timestamp_now();
        assert!(t.len() == 19 || t.len() == 26, "{t}");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20784), (2026, 11, 27));
        assert_eq!(civil_from_days(11016), (2000, 2, 29));
    }
}
