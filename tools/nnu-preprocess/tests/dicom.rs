//! DICOM series in for the file path (issue 19): `nnu-preprocess -i FOLDER` takes a folder of DICOM series as
//! `nnu-predict` does, one case per series named `PATIENT_sNUMBER_UID`. Two committed phantom series
//! (`fixtures/dicom/axial` and `oblique`) and pydicom's RLE-compressed MR (refused) sit in one input folder:
//! the RLE series fails alone, naming its transfer syntax; the other two get their tiles, their
//! `all_shape.txt` lines and their `CASE.json` with the series' geometry as SimpleITK reads it
//! (`fixtures/dicom/expected.json`, 1e-6). The tiles are then run by the in-test device
//! (`tools/tile_device.rs`) and merged by `postprocess_from_dumps` (what `nnu-postprocess` calls; its binary
//! is tested on the same series in `tools/nnu-postprocess/tests/dicom.rs`): the segmentations and
//! probabilities equal the streaming path's (`predict_case`, what `nnu-predict` runs), in the series'
//! geometry.

#[path = "../../tile_device.rs"]
mod device;

use std::process::Command;

use device::*;
use nnu_bins::{read_all_shape, DumpIndex};
use nnu_engine::Backend;
use nnu_pipeline::bins::{postprocess_from_dumps, properties_path, read_properties};
use nnu_pipeline::cases::{discover_cases, read_first_image};
use nnu_pipeline::model::ModelSpec;
use nnu_pipeline::predict::predict_case;
use nnu_pipeline::stages::PredictOptions;

/// (fixture folder, case name).
const SERIES: [(&str, &str); 2] = [
    ("axial", "PHANTOM-A_s3_1.2.826.0.1.3680043.8.498.4242.3"),
    ("oblique", "PHANTOM-C_s5_1.2.826.0.1.3680043.8.498.4242.5"),
];
const RLE_CASE: &str = "4MR1_s1_1.3.6.1.4.1.5962.1.3.4.1.20040826185059.5457";

fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

#[test]
fn dicom_series_are_preprocessed_one_case_each_and_merge_like_nnu_predict() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    let images = t.join("images");
    for (folder, _) in SERIES {
        copy_tree(&dicom_fixture(folder), &images.join(folder));
    }
    copy_tree(&dicom_fixture("MR_small_RLE"), &images.join("rle"));
    let bins = t.join("bins");
    let shape_file = t.join("all_shape.txt");
    let o = Command::new(env!("CARGO_BIN_EXE_nnu-preprocess"))
        .arg("-m")
        .arg(demo_model())
        .arg("-i")
        .arg(&images)
        .arg("-o")
        .arg(&bins)
        .arg("--shape-file")
        .arg(&shape_file)
        .args(["--threads", "2"])
        .output()
        .expect("run nnu-preprocess");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let refused = err
        .lines()
        .find(|l| l.starts_with(&format!("error: {RLE_CASE}: ")))
        .unwrap_or_else(|| panic!("the RLE series' error: {err}"));
    assert!(
        refused.contains("RLE Lossless") && refused.contains("MR_small_RLE.dcm"),
        "{refused}"
    );

    // One all_shape.txt line and one CASE.json per readable series, the geometry SimpleITK's.
    let records = read_all_shape(&shape_file).expect("all_shape.txt");
    let listed: Vec<&str> = records.iter().map(|r| r.case.as_str()).collect();
    assert_eq!(listed, SERIES.map(|(_, c)| c));
    let text =
        std::fs::read_to_string(root().join("fixtures/dicom/expected.json")).expect("goldens");
    let goldens: serde_json::Value = serde_json::from_str(&text).expect("json");
    for (folder, case) in SERIES {
        let saved = read_properties(&properties_path(&shape_file, case))
            .expect("CASE.json readable")
            .unwrap_or_else(|| panic!("{case}.json written beside all_shape.txt"));
        let p = &saved.props;
        let e = &goldens[folder];
        let size = f64s(&e["size"]);
        let [z, y, x] = p.original_size_of_raw_data;
        assert_eq!([x as f64, y as f64, z as f64], [size[0], size[1], size[2]]);
        for (what, ours, sitk) in [
            ("spacing", p.itk_spacing.to_vec(), f64s(&e["spacing"])),
            ("origin", p.itk_origin.to_vec(), f64s(&e["origin"])),
            ("direction", p.itk_direction.to_vec(), f64s(&e["direction"])),
        ] {
            for (a, b) in ours.iter().zip(&sitk) {
                assert!(
                    (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                    "{folder}: {what} {ours:?}, SimpleITK {sitk:?}"
                );
            }
        }
        let tiles = std::fs::read_dir(&bins)
            .expect("bins")
            .filter(|e| {
                let name = e.as_ref().expect("entry").file_name();
                let name = name.to_string_lossy();
                name.starts_with(&format!("{case}_")) && name.ends_with(".bin")
            })
            .count();
        let record = records.iter().find(|r| r.case == case).expect("record");
        assert_eq!(tiles, 8 * record.num_tiles(), "{case}: tiles x 8 mirrors");
    }

    // The device, then the merge of each case against the streaming path.
    let model = ModelSpec::open(&demo_model()).expect("demo model");
    let mut backend = tract_backend(&model);
    let dumps = t.join("dumps");
    run_device(&bins, &mut backend, &dumps);
    let index = DumpIndex::scan(&[&dumps], None).expect("dumps");
    let opts = PredictOptions {
        save_probabilities: true,
        overwrite: true,
        ..PredictOptions::default()
    };
    let cases = discover_cases(&images).expect("the series");
    let (out, streamed) = (t.join("post"), t.join("stream"));
    let mut backends: Vec<Box<dyn Backend>> = vec![Box::new(backend)];
    for (_, name) in SERIES {
        let case = cases.iter().find(|c| c.name == name).expect("case");
        let record = records.iter().find(|r| r.case == name).expect("record");
        let saved = read_properties(&properties_path(&shape_file, name)).expect("CASE.json");
        postprocess_from_dumps(case, &model, record, saved.as_ref(), &index, &out, &opts)
            .expect("postprocess");
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
        let (fg, max) = assert_same_outputs(&out, &streamed, name, &geometry);
        eprintln!(
            "{name}: segmentation identical ({fg} foreground voxels), probabilities max abs diff {max:e}"
        );
    }
}
