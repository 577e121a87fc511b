//! The sliding window nnU-Net runs over an image: the tile starts along each axis and the tile count for a
//! shape, a patch and a step size (`_compute_steps_for_sliding_window`):
//!
//! ```sh
//! cargo run --release -p nnu-tiling --example tiles -- 160,256,256 128,128,128 [0.5]
//! ```
use nnu_tiling::TileGrid;

fn triple(s: &str) -> Result<[usize; 3], Box<dyn std::error::Error>> {
    let v: Vec<usize> = s
        .split(',')
        .map(|x| x.trim().parse())
        .collect::<Result<_, _>>()?;
    v.try_into()
        .map_err(|_| format!("'{s}' is not three sizes z,y,x").into())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: tiles Z,Y,X PZ,PY,PX [STEP]";
    let shape = triple(&args.next().ok_or(usage)?)?;
    let patch = triple(&args.next().ok_or(usage)?)?;
    let step: f64 = args.next().map_or(Ok(0.5), |s| s.parse())?;
    let grid = TileGrid::new(shape, patch, step)?;
    println!(
        "image {shape:?} (padded to at least the patch), patch {patch:?}, step {step}: {} tiles",
        grid.len()
    );
    for tile in grid.tiles().take(4) {
        println!("  tile {}: {tile:?}", tile.index);
    }
    if grid.len() > 4 {
        println!("  ...");
    }
    Ok(())
}
