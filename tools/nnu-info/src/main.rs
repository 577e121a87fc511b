//! `nnu-info`: Write the .info list(s) of tile bins for Ascend inference tools, optionally sharded.
use clap::Parser;

/// Write the .info list(s) of tile bins for Ascend inference tools, optionally sharded.
#[derive(Parser, Debug)]
#[command(name = "nnu-info", version, about)]
struct Args {}

fn main() {
    let _args = Args::parse();
    eprintln!("error: nnu-info is not implemented yet");
    std::process::exit(2);
}
