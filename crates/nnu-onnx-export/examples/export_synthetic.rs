//! Exports a small 3-D `Generic_UNetPlusPlus` (five levels, as its forward pass requires) with seeded synthetic weights to ONNX, without Python,
//! and prints its outputs.
//!
//! ```text
//! cargo run -p nnu-onnx-export --example export_synthetic [OUT.onnx]
//! ```
//! The file opens in Netron, onnxruntime or `nnu-infer --model OUT.onnx --loop 2`.

use nnu_onnx_export::{
    export_model, synthetic_state_dict, ExportOptions, Family, NetworkSpec, SyntheticConfig,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "unetpp_small.onnx".into());
    let spec = NetworkSpec {
        family: Family::UnetPlusPlus,
        patch_size: vec![32, 32, 32],
        pool_op_kernel_sizes: vec![vec![2, 2, 2]; 5],
        conv_kernel_sizes: vec![vec![3, 3, 3]; 6],
        conv_per_stage: 2,
    };
    let cfg = SyntheticConfig {
        base_num_features: 8,
        max_num_features: 64,
        ..Default::default()
    };
    let weights = synthetic_state_dict(&spec, &cfg)?;
    let exported = export_model(&spec, weights, &ExportOptions::default())?;
    for o in &exported.outputs {
        println!("output {:<8} shape {:?}", o.name, o.shape);
    }
    let bytes = exported.to_bytes();
    std::fs::write(&out, &bytes)?;
    println!("wrote {out} ({} bytes)", bytes.len());
    Ok(())
}
