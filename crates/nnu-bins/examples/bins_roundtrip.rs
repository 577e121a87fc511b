//! Writes a small case as the recipe's tile bins (all eight mirrors), lists them the way the Ascend
//! tools read them, and checks which output dumps are still missing.
//!
//! ```text
//! cargo run -p nnu-bins --example bins_roundtrip [OUT_DIR]
//! ```
//! Without `OUT_DIR` the files go to a temporary folder that is removed at the end.

use ndarray::{s, Array4};
use nnu_bins::{BinsError, DumpIndex, MappedBin, Mirror, ShapeRecord, TileWriter};

fn main() -> Result<(), BinsError> {
    let keep = std::env::args().nth(1).map(std::path::PathBuf::from);
    let dir = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("nnu-bins-example-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).map_err(|e| BinsError::Io {
        path: dir.clone(),
        source: e,
    })?;

    // A padded (1, 12, 8, 8) volume cut into 8^3 windows starting at z = 0 and 4.
    let volume =
        Array4::<f32>::from_shape_fn((1, 12, 8, 8), |(_, z, y, x)| (z * 64 + y * 8 + x) as f32);
    let record = ShapeRecord::new("demo_001", [12, 8, 8], [vec![0, 4], vec![0], vec![0]])?;
    let mut writer = TileWriter::new();
    let names = record.tile_names([8, 8, 8], &Mirror::set(true))?;
    for name in &names {
        let (l, u) = (name.bounds.lower, name.bounds.upper);
        let tile = volume.slice(s![.., l[0]..u[0], l[1]..u[1], l[2]..u[2]]);
        writer.write(&dir.join(name.file_name()), tile, name.mirror)?;
    }
    println!("all_shape.txt line: {}", record.line());
    println!("{} tiles written to {}", names.len(), dir.display());

    // Read the first one back, memory-mapped.
    let first = dir.join(names[0].file_name());
    let tile = MappedBin::open_shape(&first, &[1, 8, 8, 8])?;
    println!(
        "{}: {} values, first {}",
        first.display(),
        tile.as_slice().len(),
        tile.as_slice()[0]
    );

    // No device has run yet: every output dump is missing.
    let index = DumpIndex::scan(&[&dir], None)?;
    let report = index.check_case(&record, [8, 8, 8], &Mirror::set(true), 3)?;
    println!("dumps missing: {} of {}", report.missing.len(), names.len());

    if keep.is_none() {
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(())
}
