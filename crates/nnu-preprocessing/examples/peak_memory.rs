//! Runs one step of the preprocessing bench in a fresh process and prints its wall time and peak RSS
//! (`VmHWM`), to compare with `scripts/bench/preprocess_vs_nnunet.py`, which reports the same for nnU-Net.
//!
//! ```text
//! cargo run --release -p nnu-preprocessing --example peak_memory -- case/preprocess
//! ```
//!
//! Steps: `input` (only the phantom), `resample/order3_3d`, `resample/order1_3d`, `resample/order3_sepz`,
//! `resample/order1_sepz`, `case/preprocess`, `case/export_3class`. The input is the phantom of
//! `benches/benches/preprocessing.rs`: (200, 256, 256) f32 resampled to (250, 300, 300).

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

/// A `/proc/self/status` field in MiB (`VmHWM`, `VmRSS`); NaN where unavailable.
fn status_mib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(key)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Resets `VmHWM` to the current RSS (Linux `clear_refs` 5), so the peak measured is the step's own.
fn reset_hwm() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let step = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "case/preprocess".into());
    let ct = Normalization::Ct {
        stats: IntensityProperties {
            mean: 99.4,
            sd: 39.4,
            percentile_00_5: -17.0,
            percentile_99_5: 201.0,
        },
        use_nonzero_mask: false,
    };
    let params = PreprocessParams::new([0.96, 0.768, 0.768], vec![ct]);
    let geometry = ItkGeometry::from_spacing_zyx([1.2, 0.9, 0.9]);
    let input = phantom();
    let plan = |sep: Option<usize>| ResamplePlan {
        new_shape: OUT,
        separate_z_axis: sep,
    };
    let mut probs = None;
    let mut props = None;
    if step == "case/export_3class" {
        let (_, p) = preprocess_case(vec![input.clone()], &geometry, &params)?;
        props = Some(p);
        let mut pr = Array4::<f32>::zeros((3, OUT[0], OUT[1], OUT[2]));
        Zip::indexed(&mut pr).par_for_each(|(c, z, y, x), v| {
            *v = ((z as f32 * 0.03 + c as f32).sin()
                + (y as f32 * 0.02).cos() * (x as f32 * 0.025 * c as f32).sin())
            .exp();
        });
        probs = Some(pr);
    }
    reset_hwm();
    let before = status_mib("VmRSS:");
    let t0 = Instant::now();
    match step.as_str() {
        "input" => {}
        "resample/order3_3d" => drop(resample_channel(input.view(), &plan(None), Order::Cubic)?),
        "resample/order1_3d" => drop(resample_channel(input.view(), &plan(None), Order::Linear)?),
        "resample/order3_sepz" => drop(resample_channel(
            input.view(),
            &plan(Some(0)),
            Order::Cubic,
        )?),
        "resample/order1_sepz" => drop(resample_channel(
            input.view(),
            &plan(Some(0)),
            Order::Linear,
        )?),
        "case/preprocess" => drop(preprocess_case(vec![input], &geometry, &params)?),
        "case/export_3class" => {
            if let (Some(pr), Some(p)) = (&probs, &props) {
                drop(export_segmentation(
                    pr.view(),
                    p,
                    &params,
                    &ExportOptions::default(),
                )?);
            }
        }
        other => return Err(format!("unknown step {other}").into()),
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{step:24} {secs:8.3} s   peak RSS {:7.0} MiB (inputs {:7.0} MiB)",
        status_mib("VmHWM:"),
        before
    );
    Ok(())
}
