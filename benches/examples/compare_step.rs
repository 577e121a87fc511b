//! One timed step of the comparison runner (`benches/compare/run.sh`) in a fresh process, so that
//! `/usr/bin/time -v` reports that step's own peak RSS. Our counterpart of `benches/compare/ref_steps.py`,
//! which runs nnU-Net 1.7.1 / SimpleITK on the same inputs. Prints one JSON line with the step's seconds.
//!
//! ```text
//! cargo run --release -p nnu-benches --example compare_step -- export Z,Y,X OUT.nii.gz
//! cargo run --release -p nnu-benches --example compare_step -- nifti IN.nii.gz OUT.nii.gz
//! cargo run --release -p nnu-benches --example compare_step -- merge [REPEAT]
//! cargo run --release -p nnu-benches --example compare_step -- tiles Z,Y,X [PATCH]
//! ```
//!
//! - `export`: the probabilities of 3 classes on the preprocessed grid of an image of shape Z,Y,X at
//!   spacing (1.2, 0.9, 0.9) mm resampled to (0.96, 0.768, 0.768) (the analytic inputs of
//!   `benches/benches/preprocessing.rs` `case/export_3class`), exported as nnU-Net's
//!   `save_segmentation_nifti_from_softmax` does: resample back (order 1), argmax, paste into the crop box,
//!   and the `.nii.gz` write. Input generation is not timed.
//! - `nifti`: read `IN` to f32 (what the pipeline does with a CT), then write its int16 values back as
//!   `.nii.gz` (default options); the two are timed separately.
//! - `merge`: the Gaussian-weighted merge of one 128^3 tile, 3 classes, 8 mirrors (as the tiling bench),
//!   best of REPEAT; divide by 8 x the per-patch network time for the merge's share.
//! - `tiles`: the number of sliding-window tiles (step 0.5) of a preprocessed shape with a cubic patch,
//!   for the recipe's scratch-disk figure.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use ndarray::{Array4, Zip};
use nnu_preprocessing::{
    export_segmentation, CaseProperties, ExportOptions, IntensityProperties, Normalization,
    PreprocessParams,
};
use nnu_tiling::{Aggregator, AggregatorOptions, Mirror, MirrorSet, TileGrid};
use nnu_volume::{read_volume, write_volume, Geometry, WriteOptions};

fn parse3(s: &str) -> Result<[usize; 3], String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|t| t.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{s}: {e}"))?;
    v.try_into()
        .map_err(|_| format!("{s}: expected three comma-separated sizes Z,Y,X"))
}

fn export(shape: [usize; 3], out: &Path) -> Result<String, String> {
    let spacing = [1.2, 0.9, 0.9];
    let target = [0.96, 0.768, 0.768];
    // nnU-Net: new_shape = round(spacing / target * shape)
    let pre: [usize; 3] =
        std::array::from_fn(|i| (spacing[i] / target[i] * shape[i] as f64).round() as usize);
    let mut probs = Array4::<f32>::zeros((3, pre[0], pre[1], pre[2]));
    Zip::indexed(&mut probs).par_for_each(|(c, z, y, x), v| {
        *v = ((z as f32 * 0.03 + c as f32).sin()
            + (y as f32 * 0.02).cos() * (x as f32 * 0.025 * c as f32).sin())
        .exp();
    });
    let props = CaseProperties {
        original_size_of_raw_data: shape,
        original_spacing: spacing,
        crop_bbox: [[0, shape[0]], [0, shape[1]], [0, shape[2]]],
        size_after_cropping: shape,
        size_after_resampling: pre,
        spacing_after_resampling: target,
        itk_spacing: [spacing[2], spacing[1], spacing[0]],
        itk_origin: [0.0; 3],
        itk_direction: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
    };
    let params = PreprocessParams::new(
        target,
        vec![Normalization::Ct {
            stats: IntensityProperties {
                mean: 99.4,
                sd: 39.4,
                percentile_00_5: -17.0,
                percentile_99_5: 201.0,
            },
            use_nonzero_mask: false,
        }],
    );
    let geometry = Geometry {
        spacing: props.itk_spacing,
        ..Geometry::default()
    };
    let t0 = Instant::now();
    let seg = export_segmentation(probs.view(), &props, &params, &ExportOptions::default())
        .map_err(|e| e.to_string())?;
    let t1 = Instant::now();
    write_volume(out, seg.view(), &geometry, &WriteOptions::default())
        .map_err(|e| e.to_string())?;
    let t2 = Instant::now();
    Ok(format!(
        r#"{{"step": "export", "shape": {:?}, "preprocessed": {:?}, "seconds": {:.4}, "numerics_s": {:.4}, "write_s": {:.4}}}"#,
        shape,
        pre,
        (t2 - t0).as_secs_f64(),
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64()
    ))
}

fn nifti(input: &Path, out: &Path) -> Result<String, String> {
    let t0 = Instant::now();
    let vol = read_volume(input).map_err(|e| e.to_string())?;
    let read_s = t0.elapsed().as_secs_f64();
    let shape = vol.shape_zyx();
    let ints = vol.data.mapv(|v| v as i16);
    let geometry = vol.geometry;
    drop(vol);
    let t1 = Instant::now();
    write_volume(out, ints.view(), &geometry, &WriteOptions::default())
        .map_err(|e| e.to_string())?;
    let write_s = t1.elapsed().as_secs_f64();
    Ok(format!(
        r#"{{"step": "nifti", "shape": {:?}, "seconds": {:.4}, "read_s": {:.4}, "write_s": {:.4}}}"#,
        shape,
        read_s + write_s,
        read_s,
        write_s
    ))
}

fn merge(repeat: usize) -> Result<String, String> {
    const P: usize = 128;
    let grid = TileGrid::new([2 * P, P, P], [P, P, P], 0.5).map_err(|e| e.to_string())?;
    let options = AggregatorOptions {
        mirrors: MirrorSet::all(),
        use_gaussian: true,
    };
    let outputs: Vec<Array4<f32>> = (0..8)
        .map(|seed| {
            Array4::from_shape_fn((3, P, P, P), |(c, z, y, x)| {
                (((c * 31 + z * 7 + y * 3 + x + seed) % 97) as f32) * 0.05 - 2.0
            })
        })
        .collect();
    let mut best = f64::INFINITY;
    for _ in 0..repeat.max(1) {
        let mut agg = Aggregator::new(3, grid.clone(), options).map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        for (m, out) in Mirror::ALL.into_iter().zip(&outputs) {
            agg.add(1, m, out.view()).map_err(|e| e.to_string())?;
        }
        best = best.min(t0.elapsed().as_secs_f64());
        std::hint::black_box(agg);
    }
    Ok(format!(
        r#"{{"step": "merge", "tile": [128, 128, 128], "classes": 3, "mirrors": 8, "seconds": {best:.4}}}"#
    ))
}

fn tiles(shape: [usize; 3], patch: usize) -> Result<String, String> {
    let grid = TileGrid::new(shape, [patch; 3], 0.5).map_err(|e| e.to_string())?;
    Ok(format!(
        r#"{{"step": "tiles", "shape": {:?}, "patch": {patch}, "tiles": {}}}"#,
        shape,
        grid.len()
    ))
}

fn run(args: &[String]) -> Result<String, String> {
    let usage = "usage: compare_step export Z,Y,X OUT.nii.gz | nifti IN OUT | merge [REPEAT] | tiles Z,Y,X [PATCH]";
    match args {
        [s, shape, out] if s == "export" => export(parse3(shape)?, Path::new(out)),
        [s, input, out] if s == "nifti" => nifti(Path::new(input), Path::new(out)),
        [s] if s == "merge" => merge(3),
        [s, n] if s == "merge" => merge(n.parse().map_err(|e| format!("{n}: {e}"))?),
        [s, shape] if s == "tiles" => tiles(parse3(shape)?, 128),
        [s, shape, p] if s == "tiles" => {
            tiles(parse3(shape)?, p.parse().map_err(|e| format!("{p}: {e}"))?)
        }
        _ => Err(usage.to_string()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
