//! `nnu-phantom`: write synthetic abdominal CT phantoms with labels in nnU-Net's raw layout.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use nnu_synth::{write_dataset, Anatomy, PhantomSpec};
use nnu_volume::WriteOptions;

/// Write synthetic abdominal CT phantoms (int16 HU) with liver/tumour labels in nnU-Net's raw layout:
/// OUT/imagesTr/phantom_XXX_0000.nii.gz, OUT/labelsTr/phantom_XXX.nii.gz and OUT/dataset.json.
#[derive(Parser, Debug)]
#[command(
    name = "nnu-phantom",
    version,
    about,
    after_help = "Example:\n  nnu-phantom -o phantoms --cases 2 --shape 48,96,96 --spacing 2.5,1.5,1.5 --seed 7\n\nExit status: 0 written, 2 bad arguments or unwritable output folder."
)]
struct Args {
    /// Output folder (created if missing).
    #[arg(short = 'o', long = "output", alias = "out", value_name = "DIR")]
    out: PathBuf,
    /// Number of cases; case i uses seed SEED + i.
    #[arg(long, default_value_t = 1)]
    cases: usize,
    /// Array shape Z,Y,X (slices, rows, columns).
    #[arg(long, value_parser = parse_usize3, default_value = "96,128,128")]
    shape: [usize; 3],
    /// Voxel spacing in mm, Z,Y,X.
    #[arg(long, value_parser = parse_f64x3, default_value = "2.5,1.5,1.5")]
    spacing: [f64; 3],
    /// Seed of the first case.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Flip the x axis (direction column x negated).
    #[arg(long)]
    flip_x: bool,
    /// Flip the y axis.
    #[arg(long)]
    flip_y: bool,
    /// Flip the z axis.
    #[arg(long)]
    flip_z: bool,
    /// Noise standard deviation in HU.
    #[arg(long, default_value_t = 12.0)]
    noise: f32,
    /// Maximum number of tumours per case (each case draws 0..=MAX).
    #[arg(long, default_value_t = 3)]
    max_tumours: u32,
    /// Anatomy: `basic` (body, fat, liver, tumours, spleen, spine, ribs) or `full` (adds a muscle wall,
    /// kidneys, the aorta, hepatic vessels, tumours of more sizes and contrasts).
    #[arg(long, value_enum, default_value_t = AnatomyArg::Basic)]
    anatomy: AnatomyArg,
    /// gzip level 0..=9.
    #[arg(long, default_value_t = 1)]
    gzip_level: u32,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// `--anatomy` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum AnatomyArg {
    Basic,
    Full,
}

fn parse_triple<T: std::str::FromStr>(s: &str) -> Result<[T; 3], String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    if parts.len() != 3 {
        return Err(format!(
            "expected three comma-separated values Z,Y,X, got {s:?}"
        ));
    }
    let mut out = Vec::with_capacity(3);
    for p in parts {
        out.push(p.parse::<T>().map_err(|_| format!("not a number: {p:?}"))?);
    }
    out.try_into()
        .map_err(|_| "expected three values".to_string())
}

fn parse_usize3(s: &str) -> Result<[usize; 3], String> {
    parse_triple(s)
}

fn parse_f64x3(s: &str) -> Result<[f64; 3], String> {
    parse_triple(s)
}

fn main() -> ExitCode {
    nnu_cli::exit_status(run(Args::parse()))
}

fn run(args: Args) -> Result<bool, String> {
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| format!("--threads {n}: {e}"))?;
    }
    let mut spec = PhantomSpec::new(args.shape, args.spacing, args.seed);
    spec.noise_sd = args.noise;
    spec.max_tumours = args.max_tumours;
    spec.anatomy = match args.anatomy {
        AnatomyArg::Basic => Anatomy::Basic,
        AnatomyArg::Full => Anatomy::Full,
    };
    for (axis, flip) in [args.flip_x, args.flip_y, args.flip_z]
        .into_iter()
        .enumerate()
    {
        if flip {
            spec = spec.flipped(axis);
        }
    }
    let bar = ProgressBar::new(args.cases as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let opts = WriteOptions::default().compression_level(args.gzip_level);
    let result = write_dataset(&args.out, &spec, args.cases, &opts, |case| {
        bar.set_message(format!("{} ({} tumours)", case.name, case.tumours));
        bar.inc(1);
    });
    bar.finish_and_clear();
    // Volume errors already start with the file name; others name the spec field or folder. An
    // error is bad arguments or an unusable output folder.
    let cases = result.map_err(|e| match &e {
        nnu_synth::SynthError::Volume(_) | nnu_synth::SynthError::Io { .. } => e.to_string(),
        nnu_synth::SynthError::InvalidSpec { .. } => format!("{}: {e}", args.out.display()),
    })?;
    println!("wrote {} cases to {}", cases.len(), args.out.display());
    Ok(true)
}
