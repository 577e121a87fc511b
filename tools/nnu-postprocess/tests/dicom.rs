//! DICOM series through the file path (issue 19): two committed phantom series (`fixtures/dicom/axial`,
//! identity direction, and `oblique`, rotated about all three axes, in subfolders of one input folder) are
//! preprocessed into tile bins (`preprocess_to_bins`, what `nnu-preprocess` calls; its binary is tested on
//! the same series in `tools/nnu-preprocess/tests/dicom.rs`), the in-test device (`tools/tile_device.rs`)
//! writes the dumps, and the `nnu-postprocess` binary, given the same DICOM folder, matches each
//! `all_shape.txt` line to its series by the case name and writes `CASE.nii.gz` in the series' geometry:
//! the same voxels and probabilities (within 1e-6) as the streaming path (`predict_case`, what
//! `nnu-predict` runs) with the same backend.

#[path = "../../tile_device.rs"]
mod device;

use std::process::Command;

use device::*;
use nnu_engine::Backend;
use nnu_pipeline::bins::{preprocess_to_bins, BinsOptions};
use nnu_pipeline::cases::{discover_cases, read_first_image};
use nnu_pipeline::model::ModelSpec;
use nnu_pipeline::predict::predict_case;
use nnu_pipeline::stages::PredictOptions;

const CASES: [&str; 2] = [
    "PHANTOM-A_s3_1.2.826.0.1.3680043.8.498.4242.3",
    "PHANTOM-C_s5_1.2.826.0.1.3680043.8.498.4242.5",
];

#[test]
fn dicom_series_postprocess_like_nnu_predict_in_the_series_geometry() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    let images = t.join("images");
    copy_tree(&dicom_fixture("axial"), &images.join("axial"));
    copy_tree(&dicom_fixture("oblique"), &images.join("series/oblique"));
    let model = ModelSpec::open(&demo_model()).expect("demo model");
    let cases = discover_cases(&images).expect("the series");
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, CASES);

    let bins = t.join("bins");
    let shape_file = t.join("all_shape.txt");
    for case in &cases {
        let r = preprocess_to_bins(
            case,
            &model,
            &bins,
            &shape_file,
            &BinsOptions::default(),
            &mut |_, _| {},
        )
        .expect("preprocess");
        assert_eq!(r.written, 8 * r.record.num_tiles(), "{}", case.name);
    }
    let mut backend = tract_backend(&model);
    let dumps = t.join("result/dumpOutput_device0");
    let n = run_device(&bins, &mut backend, &dumps);
    assert!(n >= 16, "{n} tiles");

    let out = t.join("post");
    let o = Command::new(env!("CARGO_BIN_EXE_nnu-postprocess"))
        .arg("-m")
        .arg(demo_model())
        .arg("-i")
        .arg(&images)
        .arg("--dumps")
        .arg(&dumps)
        .arg("--shape-file")
        .arg(&shape_file)
        .arg("-o")
        .arg(&out)
        .args(["--save-probabilities", "--threads", "2"])
        .output()
        .expect("run nnu-postprocess");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");

    let streamed = t.join("stream");
    let opts = PredictOptions {
        save_probabilities: true,
        overwrite: true,
        ..PredictOptions::default()
    };
    let mut backends: Vec<Box<dyn Backend>> = vec![Box::new(backend)];
    for case in &cases {
        predict_case(
            case,
            &model,
            &mut backends,
            &streamed,
            &opts,
            &mut |_, _| {},
        )
        .expect("streaming predict");
        let geometry = read_first_image(case).expect("read the series").geometry;
        let (fg, max) = assert_same_outputs(&out, &streamed, &case.name, &geometry);
        eprintln!(
            "{}: segmentation identical ({fg} foreground voxels), probabilities max abs diff {max:e}",
            case.name
        );
    }

    // An image folder without the listed series: the case is named with the folder it was looked for in.
    let other = t.join("other");
    copy_tree(&dicom_fixture("coronal"), &other);
    let o = Command::new(env!("CARGO_BIN_EXE_nnu-postprocess"))
        .arg("-m")
        .arg(demo_model())
        .arg("-i")
        .arg(&other)
        .arg("--dumps")
        .arg(&dumps)
        .arg("--shape-file")
        .arg(&shape_file)
        .arg("-o")
        .arg(t.join("post_other"))
        .output()
        .expect("run nnu-postprocess");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(CASES[0]) && err.contains(&format!("no image under {}", other.display())),
        "{err}"
    );
}
