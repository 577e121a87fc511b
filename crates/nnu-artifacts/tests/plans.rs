//! Typed plans and splits: what the typed readers extract from the pickles equals what they extract from
//! the values Python read (the golden JSON dumps), and the JSON plans variant reads the same.

mod common;

use std::rc::Rc;

use common::{fixtures, read_json, reference, to_value};
use nnu_artifacts::pickle::{Dict, Value};
use nnu_artifacts::{Error, Plans, Splits};

fn planner(task: &str, name: &str) -> std::path::PathBuf {
    fixtures().join("planner").join(task).join(name)
}

fn golden_value(pkl: &std::path::Path) -> Value {
    let name = format!("{}.json", pkl.file_name().expect("name").to_string_lossy());
    to_value(&read_json(&pkl.with_file_name(name)))
}

#[test]
fn planner_plans_match_what_python_read() {
    for task in ["Task501_PhantomCT", "Task502_PhantomMR"] {
        for name in [
            "nnUNetPlansv2.1_plans_3D.pkl",
            "nnUNetPlansv2.1_plans_2D.pkl",
        ] {
            let path = planner(task, name);
            let plans = Plans::load(&path).unwrap_or_else(|e| panic!("{e}"));
            let from_python =
                Plans::from_value(&golden_value(&path)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(plans, from_python, "{}", path.display());
        }
    }
}

#[test]
fn ct_plans_fields() {
    let p =
        Plans::load(planner("Task501_PhantomCT", "nnUNetPlansv2.1_plans_3D.pkl")).expect("plans");
    let g = golden_value(&planner(
        "Task501_PhantomCT",
        "nnUNetPlansv2.1_plans_3D.pkl",
    ));
    let gd = g.as_dict().expect("dict");
    let stage = gd
        .get_str("plans_per_stage")
        .and_then(|s| s.as_dict()?.get_int(0))
        .expect("stage 0");
    let sd = stage.as_dict().expect("stage dict");
    let f = p.fullres_stage();
    let as_usize = |k: &str| -> Vec<usize> {
        sd.get_str(k)
            .and_then(Value::as_array)
            .and_then(|a| a.to_i64())
            .expect(k)
            .iter()
            .map(|&x| x as usize)
            .collect()
    };
    assert_eq!(f.patch_size, as_usize("patch_size"));
    assert_eq!(
        f.median_patient_size_in_voxels,
        as_usize("median_patient_size_in_voxels")
    );
    assert_eq!(
        f.current_spacing,
        sd.get_str("current_spacing")
            .and_then(Value::as_array)
            .and_then(|a| a.to_f64())
            .expect("spacing")
    );
    // nnU-Net's planner stores float32 statistics (the voxels it samples are float32).
    let ip = &p
        .intensity_properties
        .as_ref()
        .expect("CT has intensity properties")[0];
    assert!(ip.stored_as_f32);
    let gip = gd
        .get_str("dataset_properties")
        .and_then(|d| d.as_dict()?.get_str("intensityproperties"))
        .and_then(|d| d.as_dict()?.get_int(0))
        .and_then(|d| d.as_dict())
        .expect("intensityproperties[0]");
    for (k, v) in [
        ("mean", ip.mean),
        ("sd", ip.sd),
        ("percentile_00_5", ip.percentile_00_5),
        ("percentile_99_5", ip.percentile_99_5),
    ] {
        assert_eq!(
            v.to_bits(),
            gip.get_str(k).and_then(Value::as_f64).expect(k).to_bits(),
            "{k}"
        );
        assert_eq!(
            f64::from(v as f32).to_bits(),
            v.to_bits(),
            "{k} is an exact float32"
        );
    }
    assert_eq!(p.normalization_schemes, vec!["CT".to_string()]);
    assert_eq!(p.modalities, vec!["CT".to_string()]);
    assert_eq!(p.transpose_forward.len(), 3);
    assert_eq!(f.conv_kernel_sizes.len(), f.pool_op_kernel_sizes.len() + 1);
}

#[test]
fn mr_plans_have_no_intensity_properties() {
    let p =
        Plans::load(planner("Task502_PhantomMR", "nnUNetPlansv2.1_plans_3D.pkl")).expect("plans");
    assert_eq!(p.num_modalities, 2);
    assert!(p.intensity_properties.is_none());
    assert_eq!(
        p.normalization_schemes,
        vec!["nonCT".to_string(), "nonCT".to_string()]
    );
    assert_eq!(p.use_mask_for_norm.len(), 2);
}

#[test]
fn json_variant_reads_the_same_plans() {
    let pkl =
        Plans::load(planner("Task501_PhantomCT", "nnUNetPlansv2.1_plans_3D.pkl")).expect("pkl");
    let mut json = Plans::load(planner("Task501_PhantomCT", "plans_3D.json")).expect("json");
    // JSON has no float32: only the provenance flag differs.
    for ip in json.intensity_properties.iter_mut().flatten() {
        assert!(!ip.stored_as_f32);
        ip.stored_as_f32 = true;
    }
    assert_eq!(pkl, json);
}

#[test]
fn reference_plans_match_meta() {
    let r = reference();
    for model in ["unet-small", "unetpp-small"] {
        let meta = read_json(&r.join(model).join("meta.json"));
        let p = Plans::load(r.join(model).join("plans.pkl")).expect("plans");
        let from_python = Plans::from_value(&to_value(&read_json(
            &fixtures().join(format!("reference/{model}.plans.pkl.json")),
        )))
        .expect("golden");
        assert_eq!(p, from_python);
        let f = p.fullres_stage();
        let as_vec = |k: &str| -> Vec<usize> {
            meta[k]
                .as_array()
                .expect(k)
                .iter()
                .map(|x| x.as_u64().expect("int") as usize)
                .collect()
        };
        assert_eq!(f.patch_size, as_vec("patch"));
        assert_eq!(
            p.num_output_channels() as u64,
            meta["classes"].as_u64().expect("classes")
        );
        assert_eq!(
            p.base_num_features as u64,
            meta["base"].as_u64().expect("base")
        );
        let ct: Vec<f32> = meta["ct"]
            .as_array()
            .expect("ct")
            .iter()
            .map(|x| x.as_f64().expect("f") as f32)
            .collect();
        let ip = &p.intensity_properties.as_ref().expect("ct")[0];
        assert_eq!(
            [
                ip.mean as f32,
                ip.sd as f32,
                ip.percentile_00_5 as f32,
                ip.percentile_99_5 as f32
            ]
            .to_vec(),
            ct
        );
        assert!(ip.stored_as_f32);
    }
}

#[test]
fn splits_match_what_python_read() {
    for task in ["Task501_PhantomCT", "Task502_PhantomMR"] {
        let path = planner(task, "splits_final.pkl");
        let s = Splits::load(&path).expect("splits");
        assert_eq!(s, Splits::from_value(&golden_value(&path)).expect("golden"));
        assert_eq!(s.folds.len(), 5);
        for f in &s.folds {
            assert!(!f.val.is_empty() && !f.train.is_empty());
            assert!(f.val.iter().all(|v| !f.train.contains(v)));
        }
    }
}

/// A copy of `v` without `key` at the top level or inside `plans_per_stage[0]`.
fn without(v: &Value, path: &[&str]) -> Value {
    let d = v.as_dict().expect("dict");
    let mut entries = Vec::new();
    for (k, x) in &d.entries {
        let key = k.to_string();
        let key = key.trim_matches('\'');
        if path.len() == 1 && key == path[0] {
            continue;
        }
        if path.len() > 1
            && (key == path[0] || k.as_i64().map(|i| i.to_string()).as_deref() == Some(path[0]))
        {
            entries.push((k.clone(), without(x, &path[1..])));
        } else {
            entries.push((k.clone(), x.clone()));
        }
    }
    Value::Dict(Rc::new(Dict {
        ordered: d.ordered,
        entries,
    }))
}

#[test]
fn missing_keys_are_named() {
    let path = planner("Task501_PhantomCT", "nnUNetPlansv2.1_plans_3D.pkl");
    let v = nnu_artifacts::pickle::from_path(&path).expect("pickle");
    let err = Plans::from_value(&without(&v, &["num_classes"])).expect_err("missing");
    assert!(
        matches!(&err, Error::MissingKey { key } if key == "num_classes"),
        "{err}"
    );
    let err = Plans::from_value(&without(&v, &["plans_per_stage", "0", "patch_size"]))
        .expect_err("missing");
    assert_eq!(
        err.to_string(),
        "missing key `plans_per_stage/0/patch_size`"
    );
    // From a file, the error names the file too.
    let err = Plans::load(fixtures().join("zoo/zoo_p4.pkl")).expect_err("not plans");
    assert!(
        err.to_string().contains("zoo_p4.pkl") && err.to_string().contains("num_stages"),
        "{err}"
    );
}
