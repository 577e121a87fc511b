//! Times one `read_volume` of each file given, or one `write_volume` (default options) of the first as
//! `.nii.gz`, and prints `read|write <file> <seconds>` per line. Used by `scripts/bench/nifti_vs_sitk.py`
//! to interleave nnu-volume with SimpleITK on the shared development VM, so that both see the same load;
//! the criterion bench (`benches/benches/nifti.rs`) is the reference measurement.
//!
//! `cargo run --release -p nnu-volume --example nifti_timing -- [--write OUT.nii.gz] FILE...`

use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut write_to = None;
    let mut files = Vec::new();
    while let Some(a) = args.next() {
        if a == "--write" {
            write_to = args.next().map(PathBuf::from);
        } else {
            files.push(PathBuf::from(a));
        }
    }
    if files.is_empty() {
        eprintln!("usage: nifti_timing [--write OUT.nii.gz] FILE...");
        std::process::exit(2);
    }
    let fail = |e: nnu_volume::VolumeError| -> ! {
        eprintln!("error: {e}");
        std::process::exit(1)
    };
    if let Some(out) = write_to {
        let v = nnu_volume::read_volume_as::<i16>(&files[0]).unwrap_or_else(|e| fail(e));
        let opts = nnu_volume::WriteOptions::default();
        let t = Instant::now();
        v.write(&out, &opts).unwrap_or_else(|e| fail(e));
        println!("write {} {:.4}", out.display(), t.elapsed().as_secs_f64());
        return;
    }
    for f in &files {
        let t = Instant::now();
        let v = nnu_volume::read_volume(f).unwrap_or_else(|e| fail(e));
        let s = t.elapsed().as_secs_f64();
        drop(v);
        println!("read {} {s:.4}", f.display());
    }
}
