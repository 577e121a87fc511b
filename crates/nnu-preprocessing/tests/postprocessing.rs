//! nnU-Net 1.7.1 `remove_all_but_the_largest_connected_component` with a `postprocessing.json` as
//! `determine_postprocessing` writes it; goldens from `scripts/goldens/preprocessing_make.py`. The label maps
//! must be identical.

mod common;

use ndarray::{Array3, Ix3};
use nnu_preprocessing::export::remove_all_but_largest_component;
use nnu_preprocessing::Postprocessing;

fn load(name: &str) -> Array3<u8> {
    common::read_npy_gz_u8(&common::fixtures().join("postprocessing").join(name))
        .into_dimensionality::<Ix3>()
        .unwrap()
}

#[test]
fn largest_component_matches_nnunet() {
    let dir = common::fixtures().join("postprocessing");
    let text = std::fs::read_to_string(dir.join("postprocessing.json")).unwrap();
    let pp = Postprocessing::from_json_str(&text).unwrap();
    let labels = load("labels.npy.gz");

    let mut all = labels.clone();
    let no_min = Postprocessing {
        min_valid_object_sizes: None,
        ..pp.clone()
    };
    remove_all_but_largest_component(&mut all, &no_min, 0.5).unwrap();
    assert_eq!(all, load("expected_all.npy.gz"));

    let mut with_min = labels.clone();
    remove_all_but_largest_component(&mut with_min, &pp, 0.5).unwrap();
    assert_eq!(with_min, load("expected_min.npy.gz"));
    assert_ne!(
        all, with_min,
        "the minimum sizes must make a difference in this golden"
    );
}
