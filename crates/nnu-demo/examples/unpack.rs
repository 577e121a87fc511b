//! Writes the embedded demo (model folder, images, labels) into a folder, for use with any tool:
//!
//! ```sh
//! cargo run -p nnu-demo --example unpack -- /tmp/nnu-demo
//! nnu-predict --model /tmp/nnu-demo/model -i /tmp/nnu-demo/images -o /tmp/nnu-demo/out
//! ```
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: unpack DIR");
        return ExitCode::from(2);
    };
    match nnu_demo::write_files(&dir) {
        Ok(()) => {
            for f in nnu_demo::FILES {
                println!("{}", dir.join(f.path).display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
