//! `nnu-infer`: Run an ONNX (or .om on Ascend) model over tile bins and write output dumps with a latency summary.
use clap::Parser;

/// Run an ONNX (or .om on Ascend) model over tile bins and write output dumps with a latency summary.
#[derive(Parser, Debug)]
#[command(name = "nnu-infer", version, about)]
struct Args {}

fn main() {
    let _args = Args::parse();
    eprintln!("error: nnu-infer is not implemented yet");
    std::process::exit(2);
}
