//! `nnu-phantom`: Write synthetic abdominal CT phantoms with labels in nnU-Net raw layout.
use clap::Parser;

/// Write synthetic abdominal CT phantoms with labels in nnU-Net raw layout.
#[derive(Parser, Debug)]
#[command(name = "nnu-phantom", version, about)]
struct Args {}

fn main() {
    let _args = Args::parse();
    eprintln!("error: nnu-phantom is not implemented yet");
    std::process::exit(2);
}
