//! Smoke run of the `nifti_header` and `nifti_file` fuzz targets on the stable toolchain (see
//! `docs/fuzzing.md`): every regression input of `fuzz/regressions/`, every seed, then a few thousand
//! fixed-seed mutations through the bodies cargo-fuzz runs (`fuzz/bodies/nifti_*.rs`), which also check that
//! the readers agree with each other. And the in-memory readers the targets use agree with the file readers.

use nnu_volume::{
    read_header, read_header_from_bytes, read_labels, read_volume, read_volume_as_from_bytes,
    read_volume_channels, read_volume_channels_from_bytes, read_volume_from_bytes,
};

#[path = "../../../fuzz/bodies/nifti_file.rs"]
mod nifti_file_body;
#[path = "../../../fuzz/bodies/nifti_header.rs"]
mod nifti_header_body;
#[path = "../../../fuzz/smoke.rs"]
mod smoke;

#[test]
fn nifti_header_target_smoke() {
    smoke::smoke(
        "nifti_header",
        nifti_header_body::run,
        10_000,
        0xbb67_ae85_84ca_a73b,
        4096,
    );
}

#[test]
fn nifti_file_target_smoke() {
    smoke::smoke(
        "nifti_file",
        nifti_file_body::run,
        10_000,
        0x3c6e_f372_fe94_f82b,
        64 << 10,
    );
}

#[test]
fn bytes_readers_match_file_readers() {
    let seeds = smoke::seeds("nifti_file");
    let (mut ok, mut err) = (0, 0);
    for path in &seeds {
        let bytes = std::fs::read(path).expect("fixture");
        let name = path.display();
        let s = |e: nnu_volume::VolumeError| e.to_string();
        assert_eq!(
            read_header(path).map_err(s),
            read_header_from_bytes(path, &bytes).map_err(s),
            "{name}"
        );
        let channels = read_volume_channels(path).map_err(s);
        assert_eq!(
            read_volume_channels_from_bytes(path, bytes.clone()).map_err(s),
            channels,
            "{name}"
        );
        assert_eq!(
            read_volume_from_bytes(path, bytes.clone()).map_err(s),
            read_volume(path).map_err(s),
            "{name}"
        );
        assert_eq!(
            read_volume_as_from_bytes::<u8>(path, bytes).map_err(s),
            read_labels(path).map_err(s),
            "{name}"
        );
        match channels {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
    }
    // The fixtures hold both readable files and files SimpleITK rejects.
    assert!(ok >= 8 && err >= 1, "{ok} readable, {err} rejected");
}
