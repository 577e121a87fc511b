//! Lists the DICOM series under a folder with their geometry and, given an output folder, writes each as
//! `CASE.nii.gz` (float32, the case name `nnu-predict` gives the series): the conversion nnU-Net users do
//! with SimpleITK before predicting. Nothing else is needed; try it on the committed phantoms:
//!
//! `cargo run --release -p nnu-dicom --example dicom_to_nifti -- fixtures/dicom [OUT_DIR]`

use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1).map(PathBuf::from);
    let Some(folder) = args.next() else {
        eprintln!("usage: dicom_to_nifti FOLDER [OUT_DIR]");
        std::process::exit(2);
    };
    let out = args.next();
    let series = nnu_dicom::find_series(&folder).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    });
    let mut failed = 0;
    for s in &series {
        println!("{} ({} files)", s.case_name(), s.files.len());
        let volume = match nnu_dicom::read_series(s) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("  refused: {e}");
                failed += 1;
                continue;
            }
        };
        let g = &volume.geometry;
        println!(
            "  shape (z, y, x) {:?}, spacing {:?}, origin {:?}, direction {:?}",
            volume.shape_zyx(),
            g.spacing,
            g.origin,
            g.direction
        );
        if let Some(dir) = &out {
            let path = dir.join(format!("{}.nii.gz", s.case_name()));
            let written = std::fs::create_dir_all(dir)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    volume
                        .write(&path, &nnu_volume::WriteOptions::default())
                        .map_err(|e| e.to_string())
                });
            match written {
                Ok(()) => println!("  -> {}", path.display()),
                Err(e) => {
                    eprintln!("  error: {e}");
                    failed += 1;
                }
            }
        }
    }
    std::process::exit(if failed > 0 { 1 } else { 0 });
}
