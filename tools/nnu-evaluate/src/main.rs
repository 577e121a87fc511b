//! `nnu-evaluate`: Evaluate segmentations against references: nnU-Net's summary.json plus surface metrics.
use clap::Parser;

/// Evaluate segmentations against references: nnU-Net's summary.json plus surface metrics.
#[derive(Parser, Debug)]
#[command(name = "nnu-evaluate", version, about)]
struct Args {}

fn main() {
    let _args = Args::parse();
    eprintln!("error: nnu-evaluate is not implemented yet");
    std::process::exit(2);
}
