//! Writes a file atomically, then commits two files together, and shows that a batch dropped before
//! its commit leaves nothing behind.
//!
//! ```text
//! cargo run -p nnu-fsio --example atomic_commit [OUT_DIR]
//! NNU_FAULT_INJECT=write:2 cargo run -p nnu-fsio --example atomic_commit   # the second write fails
//! ```

use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keep = std::env::args().nth(1).map(std::path::PathBuf::from);
    let dir = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("nnu-fsio-example-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir)?;

    nnu_fsio::write_atomic(&dir.join("notes.txt"), b"written whole or not at all\n")?;
    println!("wrote {}", dir.join("notes.txt").display());

    // Two outputs of one case, committed together.
    let mut batch = nnu_fsio::Batch::new();
    batch.stage_with(&dir.join("case.png"), |w| w.write_all(b"preview"))?;
    batch.stage_with(&dir.join("case.nii.gz"), |w| w.write_all(b"segmentation"))?;
    batch.commit()?;
    println!("committed case.png and case.nii.gz");

    // A case that fails after staging one file: dropping the batch removes its temporary.
    {
        let mut failed = nnu_fsio::Batch::new();
        failed.stage_with(&dir.join("other.png"), |w| w.write_all(b"preview"))?;
        // ... the segmentation would fail here; `failed` is dropped uncommitted
    }
    let mut names: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    println!("folder now holds: {}", names.join(", "));

    if keep.is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
