//! Body of the `nifti_file` target: any byte string as a whole `.nii` / `.nii.gz` file through every reader
//! (f32, channels, exact `u8` labels, exact `i16`). Errors, never panics, and the readers agree with each
//! other. Shared by `fuzz/fuzz_targets/nifti_file.rs` and `crates/nnu-volume/tests/fuzz_smoke.rs`.

use std::path::Path;

use nnu_volume::{
    read_header_from_bytes, read_volume_as_from_bytes, read_volume_channels_from_bytes,
    read_volume_from_bytes,
};

/// Runs one input.
pub fn run(data: &[u8]) {
    let path = Path::new("fuzz.nii.gz");
    let header = read_header_from_bytes(path, data);
    let f32s = read_volume_from_bytes(path, data.to_vec());
    if let Ok(v) = &f32s {
        let h = header.as_ref().expect("header of a decoded volume");
        assert_eq!(h.shape_zyx, v.shape_zyx());
    }
    if let Ok(channels) = read_volume_channels_from_bytes(path, data.to_vec()) {
        let h = header.as_ref().expect("header of decoded channels");
        assert_eq!(channels.len(), h.channels);
        if let Ok(v) = &f32s {
            // Every value bit for bit, NaN included.
            let same = channels[0]
                .data
                .iter()
                .zip(v.data.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same && channels[0].data.len() == v.data.len());
        }
    }
    if let Ok(labels) = read_volume_as_from_bytes::<u8>(path, data.to_vec()) {
        // Exact reads agree with the f32 read: u8 values are exact in f32.
        let v = f32s.as_ref().expect("f32 read of a file that reads as u8");
        assert!(labels
            .data
            .iter()
            .zip(v.data.iter())
            .all(|(&a, &b)| f32::from(a) == b));
    }
    let _ = read_volume_as_from_bytes::<i16>(path, data.to_vec());
}
