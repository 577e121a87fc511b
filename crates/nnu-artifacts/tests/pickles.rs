//! Every value Python reads from the fixture pickles is read identically (exact: floats by bit pattern).
//! Goldens: fixtures/artifacts/**/*.pkl.json, made by scripts/goldens/artifacts_make.py.

mod common;

use common::{check, fixtures, read_json, reference};
use nnu_artifacts::pickle;

fn check_file(pkl: &std::path::Path) {
    let golden = read_json(&pkl.with_file_name(format!(
        "{}.json",
        pkl.file_name().expect("file name").to_string_lossy()
    )));
    let v = pickle::from_path(pkl).unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = check(&v, &golden, "") {
        panic!("{}: {e}", pkl.display());
    }
}

#[test]
fn zoo_all_protocols() {
    for p in 0..=5 {
        check_file(&fixtures().join(format!("zoo/zoo_p{p}.pkl")));
    }
}

#[test]
fn protocol5_frombuffer_arrays() {
    check_file(&fixtures().join("zoo/frombuffer_p5.pkl"));
}

#[test]
fn planner_outputs() {
    for task in ["Task501_PhantomCT", "Task502_PhantomMR"] {
        for name in [
            "nnUNetPlansv2.1_plans_3D.pkl",
            "nnUNetPlansv2.1_plans_2D.pkl",
            "splits_final.pkl",
        ] {
            check_file(&fixtures().join("planner").join(task).join(name));
        }
    }
}

#[test]
fn reference_plans_and_trainer_pickles() {
    let r = reference();
    for model in ["unet-small", "unetpp-small"] {
        for (file, golden) in [
            (
                r.join(model).join("plans.pkl"),
                format!("{model}.plans.pkl.json"),
            ),
            (
                r.join(model)
                    .join("fold_0/model_final_checkpoint.model.pkl"),
                format!("{model}.model_final_checkpoint.model.pkl.json"),
            ),
        ] {
            let v = pickle::from_path(&file).unwrap_or_else(|e| panic!("{e}"));
            let g = read_json(&fixtures().join("reference").join(golden));
            if let Err(e) = check(&v, &g, "") {
                panic!("{}: {e}", file.display());
            }
        }
    }
}

#[test]
fn shared_references_are_the_same_value() {
    // zoo['shared'] = {'a': l, 'b': l, 'c': (l, l), 'arr1': a, 'arr2': a}
    for p in 2..=5 {
        let v = pickle::from_path(fixtures().join(format!("zoo/zoo_p{p}.pkl"))).expect("zoo");
        let shared = v
            .as_dict()
            .and_then(|d| d.get_str("shared"))
            .and_then(|s| s.as_dict())
            .expect("shared");
        let a = shared.get_str("a").expect("a");
        let b = shared.get_str("b").expect("b");
        assert!(a.same_object(b), "protocol {p}: list not shared");
        assert_eq!(a.as_seq().map(<[_]>::len), Some(3));
        let arr1 = shared.get_str("arr1").expect("arr1");
        assert!(
            arr1.same_object(shared.get_str("arr2").expect("arr2")),
            "protocol {p}: array not shared"
        );
    }
}

#[test]
fn reference_plans_share_the_float32_dtype() {
    let r = reference();
    // Every np.float32 statistic of the plans refers to one memoised dtype; all must decode, none empty.
    let v = pickle::from_path(r.join("unetpp-small/plans.pkl")).expect("plans");
    let props = v
        .as_dict()
        .and_then(|d| d.get_str("dataset_properties"))
        .and_then(|d| d.as_dict()?.get_str("intensityproperties"))
        .and_then(|d| d.as_dict()?.get_int(0))
        .and_then(|d| d.as_dict())
        .expect("intensityproperties[0]");
    let mean = props.get_str("mean").expect("mean");
    assert_eq!(mean.as_f64().map(|m| m as f32), Some(99.4f32));
}
