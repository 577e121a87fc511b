//! Runs one step of `benches/benches/preprocessing.rs` on the same (200, 256, 256) phantom in a fresh process,
//! so that its peak RSS (`/usr/bin/time -v`) and profile (`perf record`) are that step's own.
//!
//! Run: `cargo run --release -p nnu-preprocessing --example prep_steps -- STEP [REPEAT]` with STEP one of
//! `order3_3d`, `order1_3d`, `order3_sepz`, `order1_sepz`, `preprocess`, `export_3class`, or
//! `order3_zonly` (order 3 to (250, 256, 256): only z changes). Prints the wall time,
//! CPU time and minor page faults of each repetition and the peak RSS the inputs had before the step (VmHWM).

use std::time::Instant;

use ndarray::{Array3, Array4, Axis, Zip};
use nnu_preprocessing::resample::{resample_channel, ResamplePlan};
use nnu_preprocessing::{
    export_segmentation, preprocess_case, ExportOptions, IntensityProperties, ItkGeometry,
    Normalization, Order, PreprocessParams,
};

const SHAPE: (usize, usize, usize) = (200, 256, 256);
const OUT: [usize; 3] = [250, 300, 300];

fn phantom() -> Array3<f32> {
    let mut a = Array3::<f32>::zeros(SHAPE);
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

fn ct() -> Normalization {
    Normalization::Ct {
        stats: IntensityProperties {
            mean: 99.4,
            sd: 39.4,
            percentile_00_5: -17.0,
            percentile_99_5: 201.0,
        },
        use_nonzero_mask: false,
    }
}

fn vm(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
        .unwrap_or_default()
}

/// (user + system CPU seconds, minor page faults) of this process so far, from `/proc/self/stat`.
fn cpu_and_faults() -> (f64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // fields after the command name (which is in parentheses): state is field 3
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // minflt is field 10, utime 14, stime 15 (1-based); f[0] is field 3
    let ticks = (num(11) + num(12)) as f64 / 100.0;
    (ticks, num(7))
}

/// FNV-1a of the bytes of an output, to check that two builds give bit-identical results.
fn fnv(bytes: impl Iterator<Item = u8>) -> u64 {
    bytes.fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let step = args.get(1).map(String::as_str).unwrap_or("order3_3d");
    let repeat: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let input = phantom();
    let params = PreprocessParams::new([0.96, 0.768, 0.768], vec![ct()]);
    let geometry = ItkGeometry::from_spacing_zyx([1.2, 0.9, 0.9]);
    let export_inputs = (step == "export_3class").then(|| {
        let (_, props) = preprocess_case(vec![input.clone()], &geometry, &params).unwrap();
        let mut probs = Array4::<f32>::zeros((3, OUT[0], OUT[1], OUT[2]));
        Zip::indexed(&mut probs).par_for_each(|(c, z, y, x), v| {
            *v = ((z as f32 * 0.03 + c as f32).sin()
                + (y as f32 * 0.02).cos() * (x as f32 * 0.025 * c as f32).sin())
            .exp();
        });
        (props, probs)
    });
    eprintln!(
        "inputs ready: VmRSS {} kB VmHWM {} kB",
        vm("VmRSS:"),
        vm("VmHWM:")
    );
    enum Output {
        F32(Vec<f32>),
        U8(Vec<u8>),
    }
    for _ in 0..repeat {
        let t0 = Instant::now();
        let (c0, f0) = cpu_and_faults();
        let out = match step {
            "order3_3d" | "order1_3d" | "order3_sepz" | "order1_sepz" | "order3_zonly" => {
                let plan = ResamplePlan {
                    new_shape: if step == "order3_zonly" {
                        [OUT[0], SHAPE.1, SHAPE.2]
                    } else {
                        OUT
                    },
                    separate_z_axis: step.ends_with("sepz").then_some(0),
                };
                let order = if step.starts_with("order3") {
                    Order::Cubic
                } else {
                    Order::Linear
                };
                let r = resample_channel(input.view(), &plan, order).unwrap();
                Output::F32(r.into_raw_vec_and_offset().0)
            }
            "preprocess" => {
                let r = preprocess_case(vec![input.clone()], &geometry, &params)
                    .unwrap()
                    .0;
                Output::F32(r.into_raw_vec_and_offset().0)
            }
            "export_3class" => {
                let (props, probs) = export_inputs.as_ref().unwrap();
                let r =
                    export_segmentation(probs.view(), props, &params, &ExportOptions::default())
                        .unwrap();
                Output::U8(r.into_raw_vec_and_offset().0)
            }
            other => panic!("unknown step {other}"),
        };
        let (c1, f1) = cpu_and_faults();
        let t = t0.elapsed().as_secs_f64();
        // hashing is not part of the step's timing
        let (n, hash) = match &out {
            Output::F32(v) => (v.len(), fnv(v.iter().flat_map(|x| x.to_le_bytes()))),
            Output::U8(v) => (v.len(), fnv(v.iter().copied())),
        };
        eprintln!(
            "{step}: {t:.3} s wall, {:.2} s CPU, {} page faults ({n} voxels, output hash {hash:016x})",
            c1 - c0,
            f1 - f0
        );
    }
    eprintln!("peak: VmHWM {} kB", vm("VmHWM:"));
}
