//! Body of the `bins_names` target: any byte string (lossy UTF-8) as tile / dump file names (one per line),
//! `all_shape.txt` lines and file, and a `.info` file. Errors, never panics; whatever parses formats back
//! to text that parses to the same value; tiles of parsed shape records are listed for a few patch sizes.
//! Shared by `fuzz/fuzz_targets/bins_names.rs` and `crates/nnu-bins/tests/fuzz_smoke.rs`.

use std::path::Path;

use nnu_bins::info::{format_info, parse_info};
use nnu_bins::shape::{format_all_shape, parse_all_shape};
use nnu_bins::{DumpName, Mirror, ShapeRecord, TileName};

/// Tile lists longer than this are not built (a record with many steps per axis asks for their product).
const MAX_TILES: usize = 4096;

/// Runs one input.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        if let Ok(t) = TileName::parse(line) {
            assert_eq!(
                TileName::parse(&t.file_name()).ok(),
                Some(t.clone()),
                "{line:?}"
            );
            assert_eq!(TileName::parse(&t.stem()).ok(), Some(t), "{line:?}");
        }
        if let Ok(d) = DumpName::parse(line) {
            assert_eq!(DumpName::parse(&d.file_name()).ok(), Some(d), "{line:?}");
        }
        if let Ok(r) = ShapeRecord::parse_line(line) {
            assert_eq!(ShapeRecord::parse_line(&r.line()).ok(), Some(r), "{line:?}");
        }
    }
    let path = Path::new("fuzz.txt");
    if let Ok(entries) = parse_info(path, &text) {
        assert_eq!(parse_info(path, &format_info(&entries)).ok(), Some(entries));
    }
    if let Ok(records) = parse_all_shape(path, &text) {
        for r in &records {
            // The largest patch that fits behind the last step, and two fixed ones.
            let tight: [usize; 3] = std::array::from_fn(|a| {
                let last = r.steps[a].iter().copied().max().unwrap_or(0);
                r.padded_shape[a].saturating_sub(last).max(1)
            });
            for patch in [tight, [1; 3], [128; 3]] {
                if r.validate(patch).is_ok() && r.num_tiles() <= MAX_TILES {
                    let names = r
                        .tile_names(patch, &Mirror::set(true))
                        .expect("valid record");
                    assert_eq!(names.len(), r.num_tiles() * 8);
                }
            }
        }
        assert_eq!(
            parse_all_shape(path, &format_all_shape(&records)).ok(),
            Some(records)
        );
    }
}
