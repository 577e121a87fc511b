//! Loads an ATC offline model (`.om`) on one Ascend NPU, prints its inputs and outputs, and times a few
//! executions on zeros: the first check on a new machine before running `nnu-infer --backend acl`.
//!
//! ```text
//! cargo run -p nnu-acl --example om_info -- MODEL.om [DEVICE=0] [RUNS=3]
//! ```
//! Without CANN it prints where it looked for `libascendcl.so` and exits with status 1.

use std::time::Instant;

use nnu_acl::{Runner, Runtime, RuntimeOptions};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = args
        .next()
        .ok_or("usage: om_info MODEL.om [DEVICE=0] [RUNS=3]")?;
    let device: i32 = args.next().map_or(Ok(0), |s| s.parse())?;
    let runs: usize = args.next().map_or(Ok(3), |s| s.parse())?;

    let rt = Runtime::init(&RuntimeOptions::default())?;
    println!(
        "AscendCL {}: {} device(s)",
        rt.library_path().display(),
        rt.device_count()?
    );
    let mut runner = Runner::new(&rt, device, &model)?;
    for (what, list) in [
        ("input", &runner.info().inputs),
        ("output", &runner.info().outputs),
    ] {
        for (i, t) in list.iter().enumerate() {
            println!(
                "{what} {i} {:<12} {:?} {:?}, {} bytes",
                t.name, t.dims, t.dtype, t.size
            );
        }
    }
    let voxels = runner
        .info()
        .inputs
        .first()
        .and_then(|t| t.elements())
        .ok_or("the model has no input of static shape")?;
    let zeros = vec![0.0f32; voxels];
    let mut out = Vec::new();
    for r in 0..runs {
        let t0 = Instant::now();
        runner.set_input(0, &zeros, false)?;
        runner.execute()?;
        runner.output(0, &mut out)?;
        println!(
            "run {r}: {:.1} ms ({} output values)",
            t0.elapsed().as_secs_f64() * 1e3,
            out.len()
        );
    }
    Ok(())
}
