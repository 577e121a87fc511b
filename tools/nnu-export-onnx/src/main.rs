//! `nnu-export-onnx`: Export an nnU-Net v1 checkpoint (UNet++ or Generic_UNet) to ONNX without Python.
use clap::Parser;

/// Export an nnU-Net v1 checkpoint (UNet++ or Generic_UNet) to ONNX without Python.
#[derive(Parser, Debug)]
#[command(name = "nnu-export-onnx", version, about)]
struct Args {}

fn main() {
    let _args = Args::parse();
    eprintln!("error: nnu-export-onnx is not implemented yet");
    std::process::exit(2);
}
