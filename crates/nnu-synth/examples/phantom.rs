//! Writes one synthetic abdominal CT phantom and its liver/tumour labels as NIfTI files, to open in
//! ITK-SNAP or 3D Slicer (or to feed `nnu-predict`):
//!
//! ```sh
//! cargo run --release -p nnu-synth --example phantom -- OUT_DIR [SEED]
//! ```
//!
//! Writes `OUT_DIR/phantom_SEED_0000.nii.gz` (int16 HU, nnU-Net raw naming) and
//! `OUT_DIR/phantom_SEED_labels.nii.gz` (0 background, 1 liver, 2 tumour).
use std::path::PathBuf;

use nnu_synth::{generate, PhantomSpec};
use nnu_volume::{write_volume, WriteOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().ok_or("usage: phantom OUT_DIR [SEED]")?);
    let seed: u64 = args.next().map_or(Ok(0), |s| s.parse())?;
    std::fs::create_dir_all(&out)?;
    // 40 slices of 2.5 mm, 120 x 120 pixels of 2 mm: the demo's phantoms.
    let p = generate(&PhantomSpec::new([40, 120, 120], [2.5, 2.0, 2.0], seed))?;
    let image = out.join(format!("phantom_{seed}_0000.nii.gz"));
    let labels = out.join(format!("phantom_{seed}_labels.nii.gz"));
    let opts = WriteOptions::default();
    write_volume(&image, p.image.data.view(), &p.image.geometry, &opts)?;
    write_volume(&labels, p.labels.data.view(), &p.labels.geometry, &opts)?;
    let liver = p.labels.data.iter().filter(|&&l| l == 1).count();
    let tumour = p.labels.data.iter().filter(|&&l| l == 2).count();
    println!(
        "{}: {:?} voxels, {} tumour(s); liver {liver} voxels, tumour {tumour} voxels -> {}",
        image.display(),
        p.image.data.dim(),
        p.tumours,
        labels.display()
    );
    Ok(())
}
