//! `skimage.transform.resize(order, mode='edge', anti_aliasing=False)` (scikit-image 0.26.0, scipy 1.17.1) and
//! nnU-Net 1.7.1's separate-z `resample_data_or_seg` on a random 8x11x13 volume; goldens from
//! `scripts/goldens/preprocessing_make.py`. Tolerance: max abs difference <= 1e-4 on values of magnitude ~300
//! (a few f32 ulps); order 0 must be identical (it only selects samples, including at exact half coordinates).

mod common;

use ndarray::{Array3, Ix3};
use nnu_preprocessing::resample::{resample_channel, resize, ResamplePlan};
use nnu_preprocessing::Order;

const SHAPES: [[usize; 3]; 2] = [[4, 17, 13], [12, 7, 20]];
const SEPZ: [(usize, [usize; 3]); 3] = [(0, [13, 9, 20]), (1, [5, 4, 17]), (2, [10, 15, 29])];

fn load(name: &str) -> Array3<f32> {
    common::read_npy_gz_f32(&common::fixtures().join("resize").join(name))
        .into_dimensionality::<Ix3>()
        .unwrap()
}

fn max_diff(a: &Array3<f32>, b: &Array3<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn resize_matches_skimage() {
    let input = load("input.npy.gz");
    for (i, shape) in SHAPES.iter().enumerate() {
        for (o, order) in [(0, Order::Nearest), (1, Order::Linear), (3, Order::Cubic)] {
            let expected = load(&format!("o{o}_{i}.npy.gz"));
            let got = resize(input.view(), *shape, order).unwrap();
            let d = max_diff(&got, &expected);
            println!("resize order {o} to {shape:?}: max abs diff {d:e}");
            if o == 0 {
                assert_eq!(d, 0.0, "order 0 to {shape:?}");
            } else {
                assert!(d <= 1e-4, "order {o} to {shape:?}: {d}");
            }
        }
    }
}

#[test]
fn separate_z_matches_resample_data_or_seg() {
    let input = load("input.npy.gz");
    for (axis, shape) in SEPZ {
        for (o, order) in [(1, Order::Linear), (3, Order::Cubic)] {
            let expected = load(&format!("sepz_axis{axis}_o{o}.npy.gz"));
            let plan = ResamplePlan {
                new_shape: shape,
                separate_z_axis: Some(axis),
            };
            let got = resample_channel(input.view(), &plan, order).unwrap();
            let d = max_diff(&got, &expected);
            println!("separate z axis {axis} order {o} to {shape:?}: max abs diff {d:e}");
            assert!(d <= 1e-4, "axis {axis} order {o}: {d}");
        }
    }
}
