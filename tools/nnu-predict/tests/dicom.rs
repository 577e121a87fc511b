//! DICOM series in (`-i FOLDER` of series, issue 19): one case per series, named with its UID, the
//! segmentation written as NIfTI in the series' geometry as SimpleITK reads it (`fixtures/dicom/
//! expected.json`); a series the reader refuses fails as its own case with the reason, the others done.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const EXE: &str = env!("CARGO_BIN_EXE_nnu-predict");

fn predict(input: &Path, out: &Path) -> Outcome {
    let mut cmd = Command::new(EXE);
    cmd.arg("-m")
        .arg(demo_model())
        .arg("-i")
        .arg(input)
        .arg("-o")
        .arg(out)
        .args(["--disable-tta", "--threads", "2"]);
    run_cmd(cmd)
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("list") {
        let e = e.expect("entry");
        let dst = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).expect("copy");
        }
    }
}

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("dicom/expected.json")).expect("goldens");
    serde_json::from_str(&text).expect("json")
}

fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

#[test]
fn series_folders_are_predicted_in_their_own_geometry() {
    let root = tempfile::tempdir().expect("tempdir");
    let images = root.path().join("images");
    // Three series in one tree: identity, oblique (non-integer rescale), flipped (extension-less files
    // two folders down).
    let names = [
        ("axial", "PHANTOM-A_s3_1.2.826.0.1.3680043.8.498.4242.3"),
        ("oblique", "PHANTOM-C_s5_1.2.826.0.1.3680043.8.498.4242.5"),
        ("flipped", "PHANTOM-B_s4_1.2.826.0.1.3680043.8.498.4242.4"),
    ];
    for (folder, _) in names {
        copy_tree(&fixtures().join("dicom").join(folder), &images.join(folder));
    }
    let out = root.path().join("out");
    let o = predict(&images, &out);
    o.assert_no_crash();
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let goldens = expected();
    for (folder, case) in names {
        let seg_path = out.join(format!("{case}.nii.gz"));
        let seg = nnu_volume::read_labels(&seg_path)
            .unwrap_or_else(|e| panic!("{folder}: {e}\n{}", o.stderr));
        let e = &goldens[folder];
        let size = f64s(&e["size"]);
        let (z, y, x) = seg.data.dim();
        assert_eq!(
            [x as f64, y as f64, z as f64],
            [size[0], size[1], size[2]],
            "{folder}"
        );
        assert!(seg.data.iter().all(|&l| l <= 2), "{folder}: labels 0..=2");
        // The NIfTI header holds the geometry in f32 (pixdim, quaternion, sform): 1e-5 is that rounding.
        let g = &seg.geometry;
        for (what, ours, sitk) in [
            ("spacing", g.spacing.to_vec(), f64s(&e["spacing"])),
            ("origin", g.origin.to_vec(), f64s(&e["origin"])),
            ("direction", g.direction.to_vec(), f64s(&e["direction"])),
        ] {
            for (a, b) in ours.iter().zip(&sitk) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "{folder}: {what} {ours:?}, the series has {sitk:?}"
                );
            }
        }
    }
}

#[test]
fn a_refused_series_fails_alone_with_its_reason() {
    let root = tempfile::tempdir().expect("tempdir");
    let images = root.path().join("images");
    copy_tree(&fixtures().join("dicom/axial"), &images.join("axial"));
    copy_tree(&fixtures().join("dicom/MR_small_RLE"), &images.join("rle"));
    let out = root.path().join("out");
    let o = predict(&images, &out);
    o.assert_no_crash();
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    let line = o.error_about("1.2.840.10008.1.2.5");
    assert!(
        line.contains("RLE Lossless") && line.contains("MR_small_RLE.dcm"),
        "{line}"
    );
    assert_eq!(
        o.failed_cases(),
        ["4MR1_s1_1.3.6.1.4.1.5962.1.3.4.1.20040826185059.5457"]
    );
    assert!(out
        .join("PHANTOM-A_s3_1.2.826.0.1.3680043.8.498.4242.3.nii.gz")
        .is_file());
}

#[test]
fn a_single_dicom_file_asks_for_its_folder() {
    let file: PathBuf = fixtures().join("dicom/CT_small/CT_small.dcm");
    let root = tempfile::tempdir().expect("tempdir");
    let o = predict(&file, &root.path().join("out"));
    o.assert_no_crash();
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.error_about("CT_small.dcm").contains("give the folder"));
}
