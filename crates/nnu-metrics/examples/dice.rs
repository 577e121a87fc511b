//! Dice, precision and recall of a predicted segmentation against a reference, per label, as nnU-Net's
//! evaluator counts them (for a whole folder and `summary.json`, use the `nnu-evaluate` tool):
//!
//! ```sh
//! cargo run --release -p nnu-metrics --example dice -- REFERENCE.nii.gz PREDICTION.nii.gz [LABELS]
//! ```
//!
//! `LABELS` is a comma list (default `1,2`).
use std::path::PathBuf;

use nnu_metrics::{confusion_counts, dice, precision, recall};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: dice REFERENCE.nii.gz PREDICTION.nii.gz [LABELS]";
    let reference = PathBuf::from(args.next().ok_or(usage)?);
    let prediction = PathBuf::from(args.next().ok_or(usage)?);
    let labels: Vec<i64> = args
        .next()
        .unwrap_or_else(|| "1,2".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let r = nnu_volume::read_labels(&reference)?;
    let p = nnu_volume::read_labels(&prediction)?;
    let counts = confusion_counts(r.data.view(), p.data.view(), &labels)?;
    println!("label       Dice  precision     recall  reference voxels");
    for (label, c) in labels.iter().zip(&counts) {
        println!(
            "{label:5} {:10.4} {:10.4} {:10.4} {:17}",
            dice(c),
            precision(c),
            recall(c),
            c.tp + c.fn_
        );
    }
    Ok(())
}
