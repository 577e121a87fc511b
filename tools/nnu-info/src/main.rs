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
#[command(name = "nnu-info", version, about, long_about)]
struct Args {
    /// Folder holding the tile .bin files (written into the list as given: relative stays relative).
    bin_dir: PathBuf,
    /// The .info file to write.
    out_info: PathBuf,
    /// Number of shards sth1.info..sthN.info to write next to OUT.info (one per device); 0 writes none.
    #[arg(long, default_value_t = nnu_bins::info::DEFAULT_SHARDS)]
    shards: usize,
    /// The input_width column (the patch edge).
    #[arg(long, default_value_t = nnu_bins::info::DEFAULT_SIZE)]
    width: u32,
    /// The input_height column (the patch edge).
    #[arg(long, default_value_t = nnu_bins::info::DEFAULT_SIZE)]
    height: u32,
    /// Write absolute paths (BIN_DIR made absolute first).
    #[arg(long)]
    absolute: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let bin_dir = if args.absolute {
        match std::fs::canonicalize(&args.bin_dir) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {}: {e}", args.bin_dir.display());
                return ExitCode::FAILURE;
            }
        }
    } else {
        args.bin_dir.clone()
    };
    let opts = InfoOptions {
        shards: args.shards,
        width: args.width,
        height: args.height,
    };
    match write_info_set(&bin_dir, &args.out_info, opts) {
        Ok(summary) => {
            if summary.files == 0 {
                eprintln!("warning: {}: no .bin files found", args.bin_dir.display());
            }
            println!("{}: {} tiles", args.out_info.display(), summary.files);
            for (p, n) in &summary.shards {
                println!("{}: {n} tiles", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
