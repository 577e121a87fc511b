//! What the criterion benches share: the workspace's fixtures and a scratch folder for bench data, and
//! the synthetic inputs (phantoms) several benches time their step on, so that each bench file holds
//! only its measurements.
//!
//! ```
//! use nnu_benches::{ct_phantom, label_phantom, LABEL_SHAPE, CT_SHAPE};
//!
//! let reference = label_phantom(0, 0);
//! assert_eq!(reference.dim(), LABEL_SHAPE);
//! assert!(reference.iter().any(|&v| v == 2)); // a tumour inside the liver
//! assert_eq!(ct_phantom().dim(), CT_SHAPE);
//! ```
//!
//! Deliberately not here: timing or reporting (criterion does that), or any input a single bench uses.
#![warn(missing_docs)]

use std::path::{Path, PathBuf};

use ndarray::{Array3, Array5, Axis, Zip};

/// The workspace root (the benches' crate is `benches/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `target/bench-data/NAME` of the workspace, created when missing: where a bench keeps files it
/// generates (large, so never under `fixtures/`).
pub fn data_dir(name: &str) -> PathBuf {
    let dir = workspace_root().join("target/bench-data").join(name);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("{}: {e}", dir.display());
    }
    dir
}

/// The ONNX (`model_ds.onnx`) of reference network `name` of `fixtures/reference` (`unet-small`,
/// `unetpp-small`), or `None` with a line on stderr when it is absent.
pub fn reference_onnx(name: &str) -> Option<PathBuf> {
    let path = workspace_root()
        .join("fixtures/reference")
        .join(name)
        .join("model_ds.onnx");
    if path.is_file() {
        Some(path)
    } else {
        eprintln!("skipping {name}: {} is absent", path.display());
        None
    }
}

/// A deterministic pseudo-random batch `(n, c, z, y, x)` (xorshift, values in [-2, 2)).
pub fn random_batch(n: usize, c: usize, [z, y, x]: [usize; 3]) -> Array5<f32> {
    let mut state = 0x2545_f491_u32;
    Array5::from_shape_simple_fn((n, c, z, y, x), || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state as f32 / u32::MAX as f32) * 4.0 - 2.0
    })
}

/// Shape (z, y, x) of [`label_phantom`]: a liver-size label volume, 512 x 512 x 480.
pub const LABEL_SHAPE: (usize, usize, usize) = (480, 512, 512);

/// `((p - c) / r)^2 summed <= 1`, evaluated exactly in integers.
fn inside(p: [i64; 3], c: [i64; 3], r: [i64; 3]) -> bool {
    let r2 = [r[0] * r[0], r[1] * r[1], r[2] * r[2]];
    let d = [p[0] - c[0], p[1] - c[1], p[2] - c[2]];
    d[0] * d[0] * r2[1] * r2[2] + d[1] * d[1] * r2[0] * r2[2] + d[2] * d[2] * r2[0] * r2[1]
        <= r2[0] * r2[1] * r2[2]
}

/// The analytic label phantom of `scripts/bench/evaluate_vs_nnunet.py` ([`LABEL_SHAPE`], u8; integer
/// ellipsoid tests, so the script and this produce the same voxels): label 1 a liver-like ellipsoid
/// grown by `liver_grow` voxels per semi-axis, label 2 three tumour spheres shifted by `tumour_shift`
/// along z and x. `(0, 0)` is the reference, `(3, 2)` the prediction the metrics bench scores.
pub fn label_phantom(liver_grow: i64, tumour_shift: i64) -> Array3<u8> {
    let liver = (
        [240, 270, 230],
        [150 + liver_grow, 170 + liver_grow, 190 + liver_grow],
    );
    let tumours = [
        ([200, 250, 200], 30),
        ([290, 320, 280], 18),
        ([250, 200, 330], 9),
    ];
    let mut seg = Array3::<u8>::zeros(LABEL_SHAPE);
    Zip::indexed(seg.view_mut().lanes_mut(Axis(2))).par_for_each(|(z, y), mut row| {
        for (x, v) in row.iter_mut().enumerate() {
            let p = [z as i64, y as i64, x as i64];
            if inside(p, liver.0, liver.1) {
                *v = 1;
            }
            for (c, r) in tumours {
                if inside(
                    p,
                    [c[0] + tumour_shift, c[1], c[2] + tumour_shift],
                    [r, r, r],
                ) {
                    *v = 2;
                }
            }
        }
    });
    seg
}

/// Shape (z, y, x) of [`ct_phantom`]: 200 x 256 x 256.
pub const CT_SHAPE: (usize, usize, usize) = (200, 256, 256);

/// The analytic CT phantom of `scripts/bench/preprocess_vs_nnunet.py` ([`CT_SHAPE`], f32 HU): air
/// (-1000) outside a cylinder of radius 110 voxels, inside a smooth tissue pattern with an integer
/// texture.
pub fn ct_phantom() -> Array3<f32> {
    let mut a = Array3::<f32>::zeros(CT_SHAPE);
    Zip::indexed(a.view_mut().lanes_mut(Axis(2))).par_for_each(|(z, y), mut row| {
        for (x, v) in row.iter_mut().enumerate() {
            let (dy, dx) = (y as f64 - 128.0, x as f64 - 128.0);
            *v = if dy * dy + dx * dx > 110.0 * 110.0 {
                -1000.0
            } else {
                let t = ((z * 31 + y * 17 + x * 7) % 23) as f64 - 11.0;
                (40.0 + 60.0 * (z as f64 * 0.05).sin() * (y as f64 * 0.07).cos() + t) as f32
            };
        }
    });
    a
}

/// The `nnu-synth` abdominal phantom the NIfTI bench reads and writes: 512 x 512 x 480 at
/// 0.78 x 0.78 x 1 mm, seed 0.
pub fn liver_ct_spec() -> nnu_synth::PhantomSpec {
    nnu_synth::PhantomSpec::new([480, 512, 512], [1.0, 0.78, 0.78], 0)
}
