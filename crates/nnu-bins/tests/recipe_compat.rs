//! Byte-for-byte compatibility with the files the Ascend recipe writes, against the goldens of
//! `scripts/goldens/bins_make.py` (see `fixtures/bins/README.md`). Exact comparisons, no tolerance.

use std::path::{Path, PathBuf};

use ndarray::{s, ArrayView4};
use nnu_bins::info::{entries, format_info, list_bins, shard};
use nnu_bins::shape::{format_all_shape, parse_all_shape};
use nnu_bins::{MappedBin, Mirror, ShapeRecord, TileName, TileWriter};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/bins")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).unwrap()
}

fn record(file: &str) -> ShapeRecord {
    let text = read(file);
    let recs = parse_all_shape(Path::new(file), &text).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        format_all_shape(&recs),
        text,
        "{file} does not round-trip byte for byte"
    );
    recs.into_iter().next().unwrap()
}

#[test]
fn tile_names_and_shape_lines_match_the_recipe() {
    for case in ["liver_11", "liver_52", "case_07_b"] {
        let rec = record(&format!("shape_{case}.txt"));
        assert_eq!(rec.case, case);
        let names: Vec<String> = rec
            .tile_names([128; 3], &Mirror::set(true))
            .unwrap()
            .iter()
            .map(TileName::file_name)
            .collect();
        let expected: Vec<String> = read(&format!("tiles_{case}.txt"))
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(names, expected, "{case}");
        for n in &expected {
            assert_eq!(TileName::parse(n).unwrap().file_name(), *n);
        }
    }
}

#[test]
fn tile_bytes_and_info_lists_match_the_recipe() {
    let rec = record("small_shape.txt");
    let vol_bin =
        MappedBin::open_shape(fixtures().join("small_volume.bin"), &[1, 6, 5, 7]).unwrap();
    let vol: ArrayView4<f32> = vol_bin.view4([1, 6, 5, 7]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bins = dir.path().join("input_bins");
    std::fs::create_dir(&bins).unwrap();

    let mut writer = TileWriter::new();
    let names = rec.tile_names([4; 3], &Mirror::set(true)).unwrap();
    for t in &names {
        let (l, u) = (t.bounds.lower, t.bounds.upper);
        let tile = vol.slice(s![.., l[0]..u[0], l[1]..u[1], l[2]..u[2]]);
        writer
            .write(&bins.join(t.file_name()), tile, t.mirror)
            .unwrap();
    }

    let expected_bytes = std::fs::read(fixtures().join("small_tiles.bin")).unwrap();
    let mut offset = 0;
    let listing = read("small_tiles.txt");
    assert_eq!(listing.lines().count(), names.len());
    for (line, t) in listing.lines().zip(&names) {
        let (name, size) = line.split_once(' ').unwrap();
        let size: usize = size.parse().unwrap();
        assert_eq!(t.file_name(), name);
        let got = std::fs::read(bins.join(name)).unwrap();
        assert_eq!(got.len(), size, "{name}");
        assert!(
            got == expected_bytes[offset..offset + size],
            "{name}: bytes differ"
        );
        offset += size;
    }
    assert_eq!(offset, expected_bytes.len());

    // .info: paths as the recipe writes them for BIN_DIR = "input_bins".
    let listed: Vec<PathBuf> = list_bins(&bins)
        .unwrap()
        .iter()
        .map(|p| Path::new("input_bins").join(p.file_name().unwrap()))
        .collect();
    let all = entries(&listed, 128, 128).unwrap();
    assert_eq!(format_info(&all), read("small.info"));
    for (k, part) in shard(&all, 4).unwrap().iter().enumerate() {
        assert_eq!(
            format_info(part),
            read(&format!("small_sth{}.info", k + 1)),
            "shard {}",
            k + 1
        );
    }
}
