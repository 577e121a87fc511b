//! `nnu-preprocess`: Preprocess CT volumes as nnU-Net v1 does and write tiles as bins (or .npy with --npy).
use clap::Parser;

/// Preprocess CT volumes as nnU-Net v1 does and write tiles as bins (or .npy with --npy).
#[derive(Parser, Debug)]
#[command(name = "nnu-preprocess", version, about)]
struct Args {}

fn main() {
    let _args = Args::parse();
    eprintln!("error: nnu-preprocess is not implemented yet");
    std::process::exit(2);
}
