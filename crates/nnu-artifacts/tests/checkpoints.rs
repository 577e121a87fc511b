//! Checkpoints load with identical tensors: names in order, dtype, shape, and SHA-256 of the raw
//! little-endian bytes and of the float32 conversion, against goldens made with torch.load
//! (scripts/goldens/artifacts_make.py, torch 2.15). Exact, no tolerance.

mod common;

use common::{fixtures, read_json, reference, sha256};
use nnu_artifacts::{Checkpoint, Error, ModelFolder, Plans, TrainerInfo};

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn check_tensors(ckpt: &Checkpoint, golden: &serde_json::Value) {
    let tensors = golden["tensors"].as_array().expect("tensors");
    assert_eq!(
        ckpt.state_dict.len(),
        tensors.len(),
        "{}",
        ckpt.path.display()
    );
    for (t, g) in ckpt.state_dict.iter().zip(tensors) {
        assert_eq!(t.name, g["name"].as_str().expect("name"));
        assert_eq!(
            t.dtype.name(),
            g["dtype"].as_str().expect("dtype"),
            "{}",
            t.name
        );
        let shape: Vec<usize> = g["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dim") as usize)
            .collect();
        assert_eq!(t.shape, shape, "{}", t.name);
        assert_eq!(t.data.len(), t.numel() * t.dtype.size(), "{}", t.name);
        assert_eq!(
            sha256(&t.data),
            g["sha256_raw"].as_str().expect("sha"),
            "{}: raw bytes",
            t.name
        );
        assert_eq!(
            sha256(&f32_bytes(&t.to_f32())),
            g["sha256_f32"].as_str().expect("sha"),
            "{}: f32",
            t.name
        );
    }
}

#[test]
fn reference_state_dicts_are_identical() {
    let r = reference();
    let golden = read_json(&fixtures().join("reference/reference_state_dicts.json"));
    for model in ["unet-small", "unetpp-small"] {
        let ckpt = Checkpoint::load(r.join(model).join("fold_0/model_final_checkpoint.model"))
            .expect("checkpoint");
        check_tensors(&ckpt, &golden[model]);
        assert_eq!(ckpt.epoch, golden[model]["epoch"].as_i64());
    }
}

#[test]
fn reference_parameter_counts_match_meta() {
    let r = reference();
    for model in ["unet-small", "unetpp-small"] {
        let meta = read_json(&r.join(model).join("meta.json"));
        let folder = ModelFolder::open(r.join(model)).expect("model folder");
        let ckpt = folder.checkpoint(Some(0)).expect("fold 0");
        assert_eq!(
            ckpt.num_parameters() as u64,
            meta["params"].as_u64().expect("params")
        );
        assert_eq!(
            ckpt.state_dict.len() as u64,
            meta["state_dict_keys"].as_u64().expect("keys")
        );
    }
}

#[test]
fn all_dtypes_views_and_offsets() {
    let path = fixtures().join("checkpoints/dtypes.model");
    let golden = read_json(&fixtures().join("checkpoints/dtypes.model.json"));
    let ckpt = Checkpoint::load(&path).expect("checkpoint");
    check_tensors(&ckpt, &golden);
    assert_eq!(ckpt.epoch, golden["epoch"].as_i64());
    // And element by element, as float32 bit patterns.
    for (t, g) in ckpt
        .state_dict
        .iter()
        .zip(golden["values"].as_array().expect("values"))
    {
        let want: Vec<u32> = g["f32_bits"]
            .as_array()
            .expect("bits")
            .iter()
            .map(|h| u32::from_str_radix(h.as_str().expect("hex"), 16).expect("hex"))
            .collect();
        let got: Vec<u32> = t.to_f32().iter().map(|x| x.to_bits()).collect();
        assert_eq!(got, want, "{}", t.name);
    }
}

#[test]
fn bare_state_dict() {
    let golden = read_json(&fixtures().join("checkpoints/bare_state_dict.model.json"));
    let ckpt =
        Checkpoint::load(fixtures().join("checkpoints/bare_state_dict.model")).expect("checkpoint");
    check_tensors(&ckpt, &golden);
    assert_eq!(ckpt.epoch, None);
}

#[test]
fn legacy_format_is_refused_clearly() {
    let path = fixtures().join("checkpoints/legacy.model");
    let err = Checkpoint::load(&path).expect_err("legacy format");
    let msg = err.to_string();
    assert!(
        msg.contains("legacy.model") && msg.contains("pre-1.6"),
        "{msg}"
    );
}

#[test]
fn trainer_info_of_reference_models() {
    let r = reference();
    for (model, trainer) in [
        ("unet-small", "nnUNetTrainerV2"),
        ("unetpp-small", "nnUNetPlusPlusTrainerV2"),
    ] {
        let golden = read_json(&fixtures().join(format!(
            "reference/{model}.model_final_checkpoint.model.pkl.json"
        )));
        let name = golden["dict"]
            .as_array()
            .expect("dict")
            .iter()
            .find(|p| p[0]["str"] == "name")
            .map(|p| p[1]["str"].as_str().expect("str").to_owned())
            .expect("name in golden");
        assert_eq!(name, trainer);
        let info = TrainerInfo::load(
            r.join(model)
                .join("fold_0/model_final_checkpoint.model.pkl"),
        )
        .expect("info");
        assert_eq!(info.name, name);
        assert!(info.class.as_deref().is_some_and(|c| c.contains(trainer)));
        assert_eq!(info.init.len(), 9);
        assert_eq!(info.init[0], "'plans.pkl'");
        let plans = Plans::load(r.join(model).join("plans.pkl")).expect("plans");
        assert_eq!(info.plans.as_ref(), Some(&plans));
        let folder = ModelFolder::open(r.join(model)).expect("folder");
        assert_eq!(folder.folds.len(), 1);
        assert_eq!(folder.folds[0].fold, Some(0));
        assert_eq!(
            folder.trainer.as_ref().map(|t| t.name.as_str()),
            Some(trainer)
        );
    }
}

#[test]
fn model_folder_errors_name_the_missing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = ModelFolder::open(dir.path()).expect_err("no plans");
    assert!(
        matches!(&err, Error::MissingFile { path, .. } if path.ends_with("plans.pkl")),
        "{err}"
    );
    assert!(err.to_string().contains("plans.pkl"));
    std::fs::copy(
        fixtures().join("planner/Task501_PhantomCT/nnUNetPlansv2.1_plans_3D.pkl"),
        dir.path().join("plans.pkl"),
    )
    .expect("copy");
    let err = ModelFolder::open(dir.path()).expect_err("no folds");
    assert!(
        err.to_string().contains("model_final_checkpoint.model"),
        "{err}"
    );
    std::fs::create_dir(dir.path().join("fold_2")).expect("mkdir");
    std::fs::copy(
        fixtures().join("checkpoints/dtypes.model"),
        dir.path().join("fold_2/model_final_checkpoint.model"),
    )
    .expect("copy");
    let folder = ModelFolder::open(dir.path()).expect("folder");
    assert_eq!(folder.folds.len(), 1);
    assert!(folder.trainer.is_none());
    let err = folder.checkpoint(Some(0)).expect_err("fold 0 absent");
    assert!(err.to_string().contains("fold_0"), "{err}");
    assert!(folder.checkpoint(Some(2)).is_ok());
    // A deployment fold with only model.onnx is listed; asking for its checkpoint names the file.
    std::fs::create_dir(dir.path().join("fold_1")).expect("mkdir");
    std::fs::write(dir.path().join("fold_1/model.onnx"), b"onnx").expect("write");
    let folder = ModelFolder::open(dir.path()).expect("folder");
    let names: Vec<_> = folder.folds.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["fold_1", "fold_2"]);
    assert!(folder.folds[0].checkpoint.is_none() && folder.folds[0].onnx.is_some());
    assert!(folder.folds[1].checkpoint.is_some() && folder.folds[1].onnx.is_none());
    let err = folder.checkpoint(Some(1)).expect_err("onnx only");
    assert!(
        err.to_string()
            .contains("fold_1/model_final_checkpoint.model"),
        "{err}"
    );
    // A damaged plans file names the file.
    std::fs::write(dir.path().join("plans.pkl"), b"\x80\x04\x95").expect("write");
    let err = ModelFolder::open(dir.path()).expect_err("truncated plans");
    assert!(
        err.to_string().contains("plans.pkl") && err.to_string().contains("truncated"),
        "{err}"
    );
}
