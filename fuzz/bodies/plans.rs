//! Body of the `plans` target: any byte string through the typed readers (plans, splits, trainer info),
//! both as a pickle and as the JSON copy of a plans file. Errors, never panics. Shared by
//! `fuzz/fuzz_targets/plans.rs` and `crates/nnu-artifacts/tests/fuzz_smoke.rs`.

use nnu_artifacts::{Plans, Splits, TrainerInfo};

fn use_plans(p: &Plans) {
    let stage = p.fullres_stage();
    let _ = (
        stage.patch_size.len(),
        p.num_output_channels(),
        p.all_classes.len(),
    );
}

/// Runs one input.
pub fn run(data: &[u8]) {
    if let Ok(v) = nnu_artifacts::pickle::from_slice(data) {
        if let Ok(p) = Plans::from_value(&v) {
            use_plans(&p);
        }
        let _ = Splits::from_value(&v);
        let _ = TrainerInfo::from_value(&v);
    }
    if let Ok(p) = Plans::from_json_slice(data) {
        use_plans(&p);
    }
}
