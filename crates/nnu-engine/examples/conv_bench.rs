//! Micro-benchmark of the native engine's convolution kernels on nnU-Net layer shapes (Task003 UNet++):
//! prints the median time and GFLOP/s (2 * in * out * taps * output voxels per pass, padding counted as
//! computed) per layer, precision and instruction set.
//!
//! With `defer` as the fifth argument it also times, per layer whose convolution reads a deferred input
//! (`PackedConv::reads_deferred`), the two ways of applying the previous layer's InstanceNorm and
//! LeakyReLU: a pass over the input (`norm_act`) plus the convolution, against the convolution reading
//! the deferred input (`defer_norm_act`).
//!
//! ```text
//! cargo build --release -p nnu-engine --example conv_bench
//! /work/target/release/examples/conv_bench [threads=2] [repeats=5] [f32|bf16|both] [filter] [defer]
//! ```

use std::time::Instant;

use nnu_engine::native::kernels::{
    bf16_supported, conv3d, defer_norm_act, detect_isa, norm_act, Act, Activation, ChannelStats,
    ConvSpec, PackedConv, Precision,
};

/// (name, in, out, kernel, stride, pad, input dims)
type Layer = (
    &'static str,
    usize,
    usize,
    [usize; 3],
    [usize; 3],
    [usize; 3],
    [usize; 3],
);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.get(1).map_or(Ok(2), |s| s.parse())?;
    let repeats: usize = args.get(2).map_or(Ok(5), |s| s.parse())?;
    let which = args.get(3).map_or("both", |s| s.as_str());
    let filter = args.get(4).cloned().unwrap_or_default();
    let defer = args.get(5).is_some_and(|s| s == "defer");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let isa = detect_isa();
    let mut precisions = Vec::new();
    if which != "bf16" {
        precisions.push(Precision::F32);
    }
    if which != "f32" && bf16_supported() {
        precisions.push(Precision::Bf16);
    }
    let layers: &[Layer] = &[
        (
            "3x3x3 32->32 @128^3",
            32,
            32,
            [3, 3, 3],
            [1, 1, 1],
            [1, 1, 1],
            [128, 128, 128],
        ),
        (
            "3x3x3 64->64 @64^3",
            64,
            64,
            [3, 3, 3],
            [1, 1, 1],
            [1, 1, 1],
            [64, 64, 64],
        ),
        (
            "3x3x3 128->128 @32^3",
            128,
            128,
            [3, 3, 3],
            [1, 1, 1],
            [1, 1, 1],
            [32, 32, 32],
        ),
        (
            "3x3x3 256->256 @16^3",
            256,
            256,
            [3, 3, 3],
            [1, 1, 1],
            [1, 1, 1],
            [16, 16, 16],
        ),
        (
            "3x3x3 320->320 @8^3",
            320,
            320,
            [3, 3, 3],
            [1, 1, 1],
            [1, 1, 1],
            [8, 8, 8],
        ),
        (
            "3x3x3 s2 32->64 @128^3",
            32,
            64,
            [3, 3, 3],
            [2, 2, 2],
            [1, 1, 1],
            [128, 128, 128],
        ),
        (
            "3x3x3 96->32 @128^3 (concat)",
            96,
            32,
            [3, 3, 3],
            [1, 1, 1],
            [1, 1, 1],
            [128, 128, 128],
        ),
        (
            "3x3x3 1->32 @128^3",
            1,
            32,
            [3, 3, 3],
            [1, 1, 1],
            [1, 1, 1],
            [128, 128, 128],
        ),
        // The demo's small UNet++ (base 4 features, patch 32^3): few output channels per layer.
        (
            "demo 3x3x3 4->4 @32^3",
            4,
            4,
            [3, 3, 3],
            [1, 1, 1],
            [1, 1, 1],
            [32, 32, 32],
        ),
        (
            "demo 3x3x3 24->4 @32^3",
            24,
            4,
            [3, 3, 3],
            [1, 1, 1],
            [1, 1, 1],
            [32, 32, 32],
        ),
        (
            "demo 3x3x3 1->4 @32^3",
            1,
            4,
            [3, 3, 3],
            [1, 1, 1],
            [1, 1, 1],
            [32, 32, 32],
        ),
        (
            "demo 3x3x3 8->8 @16^3",
            8,
            8,
            [3, 3, 3],
            [1, 1, 1],
            [1, 1, 1],
            [16, 16, 16],
        ),
        (
            "demo 3x3x3 40->8 @16^3",
            40,
            8,
            [3, 3, 3],
            [1, 1, 1],
            [1, 1, 1],
            [16, 16, 16],
        ),
        (
            "demo 3x3x3 16->16 @8^3",
            16,
            16,
            [3, 3, 3],
            [1, 1, 1],
            [1, 1, 1],
            [8, 8, 8],
        ),
        (
            "demo 3x3x3 32->32 @4^3",
            32,
            32,
            [3, 3, 3],
            [1, 1, 1],
            [1, 1, 1],
            [4, 4, 4],
        ),
    ];
    println!("isa {isa:?}, {threads} threads, median of {repeats}");
    for &(name, cin, cout, kernel, stride, pad, dims) in layers {
        if !name.contains(&filter) {
            continue;
        }
        let spec = ConvSpec {
            in_channels: cin,
            out_channels: cout,
            kernel,
            stride,
            pad,
        };
        let taps: usize = kernel.iter().product();
        let weight: Vec<f32> = (0..cout * cin * taps)
            .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5)
            .collect();
        let bias = vec![0.1f32; cout];
        let mut input = Act::try_zeros(cin, dims)?;
        for (i, v) in input.as_mut_slice().iter_mut().enumerate() {
            *v = ((i * 104729) % 1000) as f32 * 1e-3 - 0.5;
        }
        let out_dims = spec.out_dims(dims);
        let flop = 2.0 * (cin * cout * taps) as f64 * out_dims.iter().product::<usize>() as f64;
        let mut out = Act::try_zeros(cout, out_dims)?;
        for &precision in &precisions {
            let conv = PackedConv::new(spec.clone(), &weight, Some(&bias), precision, isa)?;
            let mut times = Vec::new();
            let mut cpu = Vec::new();
            for r in 0..=repeats {
                let mut stats = ChannelStats::default();
                let t = Instant::now();
                let c0 = process_cpu_seconds();
                pool.install(|| conv3d(&[&input], &conv, &mut out, Some(&mut stats)))?;
                if r > 0 {
                    times.push(t.elapsed().as_secs_f64());
                    cpu.push(process_cpu_seconds() - c0);
                }
            }
            times.sort_by(f64::total_cmp);
            cpu.sort_by(f64::total_cmp);
            let med = times[times.len() / 2];
            let med_cpu = cpu[cpu.len() / 2];
            println!(
                "{name:32} {precision:?}: {:8.1} ms  {:7.1} GFLOP/s  (min {:.1} ms)  {:6.1} GFLOP per CPU-s",
                med * 1e3,
                flop / med * 1e-9,
                times[0] * 1e3,
                flop / med_cpu * 1e-9
            );
            if defer && conv.reads_deferred() {
                let (pass, deferred) = time_deferral(&pool, &input, &conv, &mut out, repeats)?;
                println!(
                    "{:32}   norm pass {:.1} ms + conv {:.1} ms = {:.1} ms; conv reading it deferred {:.1} ms ({:+.1} %)",
                    "",
                    pass * 1e3,
                    med * 1e3,
                    (pass + med) * 1e3,
                    deferred * 1e3,
                    (deferred / (pass + med) - 1.0) * 100.0
                );
            }
        }
    }

    Ok(())
}

/// Median seconds of a `norm_act` pass over a copy of `input` and of the convolution reading `input`
/// deferred (statistics and affine parameters of a plausible InstanceNorm, LeakyReLU 0.01).
fn time_deferral(
    pool: &rayon::ThreadPool,
    input: &Act,
    conv: &PackedConv,
    out: &mut Act,
    repeats: usize,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let c = input.channels();
    let voxels: usize = input.dims().iter().product();
    let stats = ChannelStats {
        sum: (0..c)
            .map(|i| voxels as f64 * (0.01 * i as f64 - 0.1))
            .collect(),
        sumsq: vec![voxels as f64 * 0.2; c],
        count: voxels,
    };
    let gamma: Vec<f32> = (0..c).map(|i| 1.0 + 0.01 * i as f32).collect();
    let beta = vec![0.05f32; c];
    let act = Activation::LeakyRelu(0.01);
    let mut copy = Act::try_zeros(c, input.dims())?;
    let mut deferred = Act::try_zeros(c, input.dims())?;
    copy.as_mut_slice().copy_from_slice(input.as_slice());
    deferred.as_mut_slice().copy_from_slice(input.as_slice());
    defer_norm_act(&mut deferred, &stats, &gamma, &beta, 1e-5, act);
    let (mut pass, mut read) = (Vec::new(), Vec::new());
    for r in 0..=repeats {
        let t = Instant::now();
        pool.install(|| norm_act(&mut copy, &stats, &gamma, &beta, 1e-5, act));
        let p = t.elapsed().as_secs_f64();
        let mut st = ChannelStats::default();
        let t = Instant::now();
        pool.install(|| conv3d(&[&deferred], conv, out, Some(&mut st)))?;
        if r > 0 {
            pass.push(p);
            read.push(t.elapsed().as_secs_f64());
        }
    }
    pass.sort_by(f64::total_cmp);
    read.sort_by(f64::total_cmp);
    Ok((pass[pass.len() / 2], read[read.len() / 2]))
}

/// CPU time of the whole process (all threads), in seconds: on a loaded machine, GFLOP per CPU-second
/// times the thread count estimates what a quiet machine would give.
fn process_cpu_seconds() -> f64 {
    #[cfg(target_os = "linux")]
    {
        #[repr(C)]
        struct Timespec {
            sec: i64,
            nsec: i64,
        }
        extern "C" {
            fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
        }
        const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
        let mut ts = Timespec { sec: 0, nsec: 0 };
        // SAFETY: a valid pointer to a timespec; the clock id exists on Linux.
        if unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) } == 0 {
            return ts.sec as f64 + ts.nsec as f64 * 1e-9;
        }
    }
    f64::NAN
}
