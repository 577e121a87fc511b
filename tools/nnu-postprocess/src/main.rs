//! `nnu-postprocess`: Merge output dumps of tile bins into NIfTI segmentations in the input's geometry.
use clap::Parser;

/// Merge output dumps of tile bins into NIfTI segmentations in the input's geometry.
#[derive(Parser, Debug)]
#[command(name = "nnu-postprocess", version, about)]
struct Args {}

fn main() {
    let _args = Args::parse();
    eprintln!("error: nnu-postprocess is not implemented yet");
    std::process::exit(2);
}
