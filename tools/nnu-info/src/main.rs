//! `nnu-info`: write the `.info` list(s) of tile bins for Ascend inference tools, optionally sharded.
//!
//! The recipe's `python gen_dataset_info.py bin BIN_DIR OUT.info 128 128` becomes
//! `nnu-info BIN_DIR OUT.info`; see `nnu_bins::info` for the exact format and split.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nnu_bins::{write_info_set, InfoOptions};

/// Write the .info list of the tile bins in BIN_DIR for Huawei's `benchmark` tool ("INDEX PATH WIDTH HEIGHT"
/// per line, files sorted by name), plus the shards sth1.info..sthN.info next to OUT.info (contiguous,
/// each re-indexed from 0, the last taking the remainder), as the recipe's gen_dataset_info.py does.
#[derive(Parser, Debug)]
#[command(
    name = "nnu-info",
    version,
    about,
    long_about,
    after_help = "Example:\n  nnu-info bins tiles.info --shards 4 -m MODEL_DIR     # tiles.info, sth1.info .. sth4.info\n\nExit status: 0 written, 2 bad arguments or unusable input (nothing written)."
)]
struct Args {
    /// Folder holding the tile .bin files (written into the list as given: relative stays relative).
    bin_dir: PathBuf,
    /// The .info file to write.
    out_info: PathBuf,
    /// Number of shards sth1.info..sthN.info to write next to OUT.info (one per device); 0 writes none.
    #[arg(long, default_value_t = nnu_bins::info::DEFAULT_SHARDS)]
    shards: usize,
    /// nnU-Net v1 model folder: --width and --height default to its patch size (x and y).
    #[arg(short = 'm', long, value_name = "MODEL_DIR")]
    model: Option<PathBuf>,
    /// The input_width column (the patch's x edge). Default: from --model, else 128 (the recipe's).
    #[arg(long)]
    width: Option<u32>,
    /// The input_height column (the patch's y edge). Default: from --model, else 128 (the recipe's).
    #[arg(long)]
    height: Option<u32>,
    /// Write absolute paths (BIN_DIR made absolute first).
    #[arg(long)]
    absolute: bool,
}

/// The patch's (x, y) edges from a model folder's plans (full-resolution stage; z, y, x stored).
fn patch_xy(model: &std::path::Path) -> Result<(u32, u32), String> {
    let plans = nnu_artifacts::Plans::load(model.join("plans.pkl")).map_err(|e| e.to_string())?;
    let patch = &plans.fullres_stage().patch_size;
    let edge = |i: usize| patch.get(patch.len().wrapping_sub(i)).map(|&v| v as u32);
    match (edge(1), edge(2)) {
        (Some(x), Some(y)) => Ok((x, y)),
        _ => Err(format!("{}: the plans have no patch_size", model.display())),
    }
}

fn main() -> ExitCode {
    nnu_cli::exit_status(run(Args::parse()))
}

fn run(args: Args) -> Result<bool, String> {
    let (mut width, mut height) = (nnu_bins::info::DEFAULT_SIZE, nnu_bins::info::DEFAULT_SIZE);
    if let Some(model) = &args.model {
        (width, height) = patch_xy(model)?;
    }
    let (width, height) = (args.width.unwrap_or(width), args.height.unwrap_or(height));
    let bin_dir = if args.absolute {
        std::fs::canonicalize(&args.bin_dir)
            .map_err(|e| format!("{}: {e}", args.bin_dir.display()))?
    } else {
        args.bin_dir.clone()
    };
    let opts = InfoOptions {
        shards: args.shards,
        width,
        height,
    };
    let summary = write_info_set(&bin_dir, &args.out_info, opts).map_err(|e| e.to_string())?;
    if summary.files == 0 {
        eprintln!("warning: {}: no .bin files found", args.bin_dir.display());
    }
    println!("{}: {} tiles", args.out_info.display(), summary.files);
    for (p, n) in &summary.shards {
        println!("{}: {n} tiles", p.display());
    }
    Ok(true)
}
