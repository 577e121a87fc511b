//! `nnu-predict`: Streaming nnU-Net prediction: NIfTI in, NIfTI segmentation out, all in memory.
use clap::Parser;

/// Streaming nnU-Net prediction: NIfTI in, NIfTI segmentation out, all in memory.
#[derive(Parser, Debug)]
#[command(name = "nnu-predict", version, about)]
struct Args {}

fn main() {
    let _args = Args::parse();
    eprintln!("error: nnu-predict is not implemented yet");
    std::process::exit(2);
}
