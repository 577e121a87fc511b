//! Any byte string through the typed readers (plans, splits, trainer info): errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = nnu_artifacts::pickle::from_slice(data) {
        let _ = nnu_artifacts::Plans::from_value(&v).map(|p| p.fullres_stage().patch_size.len());
        let _ = nnu_artifacts::Splits::from_value(&v);
        let _ = nnu_artifacts::TrainerInfo::from_value(&v);
    }
    let _ = nnu_artifacts::Plans::from_json_slice(data);
});
