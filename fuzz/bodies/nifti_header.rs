//! Body of the `nifti_header` target: any byte string as the start of a NIfTI file (plain or gzip): header
//! parse, ITK's geometry rules, then the same bytes as a whole file, which adds the check of the header's
//! sizes against the data before anything is allocated. Errors, never panics. Shared by
//! `fuzz/fuzz_targets/nifti_header.rs` and `crates/nnu-volume/tests/fuzz_smoke.rs`.

use std::path::Path;

/// Runs one input.
pub fn run(data: &[u8]) {
    let path = Path::new("fuzz.nii");
    if let Ok(h) = nnu_volume::read_header_from_bytes(path, data) {
        let _ = (
            h.voxels(),
            h.geometry.ras_affine(),
            h.geometry.spacing_zyx(),
        );
        let _ = h.geometry.index_to_world_zyx([1.0, 2.0, 3.0]);
    }
    if let Ok(v) = nnu_volume::read_volume_from_bytes(path, data.to_vec()) {
        // A volume that decodes has a header that parses, with the same shape.
        let h = nnu_volume::read_header_from_bytes(path, data).expect("header of a decoded volume");
        assert_eq!(h.shape_zyx, v.shape_zyx());
        assert_eq!(format!("{:?}", h.geometry), format!("{:?}", v.geometry));
    }
}
