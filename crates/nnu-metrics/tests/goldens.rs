//! Goldens from `scripts/goldens/metrics_make.py` (nnU-Net 1.7.1 `aggregate_scores`, MedPy 0.5.2), see
//! `fixtures/metrics/README.md`.

use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::Array3;
use nnu_metrics::surface::directed_distances;
use nnu_metrics::{
    case_scores, confusion_counts, summary_text, surface_metrics, SummaryMeta, SurfaceOptions,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/metrics")
}

/// A uint8 NIfTI-1 `.nii.gz` as SimpleITK writes it: the (z, y, x) array and the spacing in (z, y, x).
fn read_u8_nifti(path: &Path) -> (Array3<u8>, [f64; 3]) {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    let i16_at = |o: usize| i16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let f32_at =
        |o: usize| f32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    assert_eq!(i16_at(70), 2, "{}: datatype must be uint8", path.display());
    let (nx, ny, nz) = (
        i16_at(42) as usize,
        i16_at(44) as usize,
        i16_at(46) as usize,
    );
    let offset = f32_at(108) as usize;
    let spacing = [f32_at(88) as f64, f32_at(84) as f64, f32_at(80) as f64];
    let data = bytes[offset..offset + nx * ny * nz].to_vec();
    (Array3::from_shape_vec((nz, ny, nx), data).unwrap(), spacing)
}

fn case_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures().join("ref"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn golden_timestamp(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("\"timestamp\""))
        .unwrap();
    line.split('"').nth(3).unwrap().to_string()
}

/// The first differing line, for a readable failure.
fn first_difference(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}: ours `{x}`, nnU-Net `{y}`", i + 1);
        }
    }
    format!("lengths differ: {} vs {}", a.len(), b.len())
}

/// Byte-identical to nnU-Net's `summary.json` (given its timestamp), `id` included: the same values
/// (all exactly equal, which is stricter than 1e-9), keys, sorting, indentation, NaN, int/float spelling.
#[test]
fn summary_json_is_byte_identical_to_nnunet() {
    let golden = std::fs::read_to_string(fixtures().join("summary.json")).unwrap();
    let labels = [0i64, 1, 2];
    let cases: Vec<_> = case_names()
        .iter()
        .map(|name| {
            let (r, _) = read_u8_nifti(&fixtures().join("ref").join(name));
            let (t, _) = read_u8_nifti(&fixtures().join("pred").join(name));
            let counts = confusion_counts(r.view(), t.view(), &labels).unwrap();
            let (test, reference) = (format!("pred/{name}"), format!("ref/{name}"));
            case_scores(&labels, &counts, None, Some(&test), Some(&reference))
        })
        .collect();
    let meta = SummaryMeta {
        timestamp: golden_timestamp(&golden),
        ..SummaryMeta::default()
    };
    let ours = summary_text(&cases, &meta);
    assert!(ours == golden, "{}", first_difference(&ours, &golden));
}

/// `Hausdorff Distance 95` of `aggregate_scores(advanced=True)` (MedPy through nnU-Net's NaN rules, label 0
/// included) equals ours to 1e-9 mm, NaN where nnU-Net has NaN.
#[test]
fn hd95_matches_nnunet_advanced_summary() {
    let golden = std::fs::read_to_string(fixtures().join("summary_advanced.json")).unwrap();
    let golden: serde_json::Value =
        serde_json::from_str(&golden.replace(": NaN", ": null")).unwrap();
    let all = golden["results"]["all"].as_array().unwrap();
    let labels = [0i64, 1, 2];
    let mut checked = 0;
    for (name, entry) in case_names().iter().zip(all) {
        assert_eq!(entry["test"], format!("pred/{name}"));
        let (r, spacing) = read_u8_nifti(&fixtures().join("ref").join(name));
        let (t, _) = read_u8_nifti(&fixtures().join("pred").join(name));
        let ours = surface_metrics(
            r.view(),
            t.view(),
            &labels,
            spacing,
            &SurfaceOptions::default(),
        )
        .unwrap();
        for (label, s) in labels.iter().zip(&ours) {
            let want = &entry[label.to_string()]["Hausdorff Distance 95"];
            match want.as_f64() {
                Some(w) => assert!(
                    (s.hd95 - w).abs() <= 1e-9,
                    "{name} label {label}: {} vs {w}",
                    s.hd95
                ),
                None => assert!(s.hd95.is_nan(), "{name} label {label}: {} vs NaN", s.hd95),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 27);
}

/// MedPy 0.5.2 `hd`, `hd95`, `assd` (connectivity 1 and 3) and the numpy NSD, with anisotropic spacing,
/// to 1e-9 mm (NSD: 1e-12, it is a ratio of counts).
#[test]
fn surface_distances_match_medpy() {
    let text = std::fs::read_to_string(fixtures().join("surface.json")).unwrap();
    let entries: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let mut compared = 0;
    for e in &entries {
        let name = e["case"].as_str().unwrap();
        let label = e["label"].as_i64().unwrap();
        let sp: Vec<f64> = e["spacing_zyx"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let (r, _) = read_u8_nifti(&fixtures().join("ref").join(name));
        let (t, _) = read_u8_nifti(&fixtures().join("pred").join(name));
        for c in [1u8, 3] {
            let d =
                directed_distances(r.view(), t.view(), label, [sp[0], sp[1], sp[2]], c).unwrap();
            let Some(hd) = e[format!("hd_c{c}")].as_f64() else {
                assert!(
                    d.is_none(),
                    "{name} label {label}: MedPy raised, we computed"
                );
                continue;
            };
            let d = d.unwrap();
            let close = |ours: f64, want: f64, what: &str, tol: f64| {
                assert!(
                    (ours - want).abs() <= tol,
                    "{name} label {label} c{c} {what}: {ours} vs {want}"
                );
            };
            close(d.hausdorff(), hd, "hd", 1e-9);
            close(
                d.hd95(),
                e[format!("hd95_c{c}")].as_f64().unwrap(),
                "hd95",
                1e-9,
            );
            close(
                d.assd(),
                e[format!("assd_c{c}")].as_f64().unwrap(),
                "assd",
                1e-9,
            );
            for tol in ["1.0", "2.5"] {
                let want = e[format!("nsd_c{c}_tol{tol}")].as_f64().unwrap();
                close(d.nsd(tol.parse().unwrap()), want, "nsd", 1e-12);
            }
            compared += 1;
        }
    }
    assert!(compared >= 20, "only {compared} comparisons");
}
