//! `nnu-inspect`: Print what an nnU-Net v1 model folder holds: trainer, classes, patch, spacing, normalisation, folds.
use clap::Parser;

/// Print what an nnU-Net v1 model folder holds: trainer, classes, patch, spacing, normalisation, folds.
#[derive(Parser, Debug)]
#[command(name = "nnu-inspect", version, about)]
struct Args {}

fn main() {
    let _args = Args::parse();
    eprintln!("error: nnu-inspect is not implemented yet");
    std::process::exit(2);
}
