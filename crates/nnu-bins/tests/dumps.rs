//! `DumpIndex` over folders laid out like `benchmark` and `ais_bench` leave them.

use std::path::Path;

use nnu_bins::{DumpIndex, DumpNaming, Mirror, ShapeRecord};

const CLASSES: usize = 3;
const PATCH: [usize; 3] = [2, 2, 2];

fn record() -> ShapeRecord {
    ShapeRecord::new("liver_1_a", [3, 2, 2], [vec![0, 1], vec![0], vec![0]]).unwrap()
}

/// Writes every output head of `stems` into `dir` with `naming`; head `k` of tile `i` is filled with
/// `100 * i + k` so the test can tell which file was picked.
fn write_heads(dir: &Path, stems: &[String], naming: DumpNaming, heads: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for (i, stem) in stems.iter().enumerate() {
        for k in 0..heads {
            let v = vec![(100 * i) as f32 + k as f32; CLASSES * 8];
            nnu_bins::write_f32_file(&dir.join(naming.file_name(stem, k)), &v).unwrap();
        }
    }
}

#[test]
fn benchmark_device_folders_are_read_without_clear2345() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = record();
    let stems: Vec<String> = rec
        .tile_names(PATCH, &Mirror::set(true))
        .unwrap()
        .iter()
        .map(|t| t.stem())
        .collect();
    assert_eq!(stems.len(), 16);
    // Four devices, five heads each, like result/dumpOutput_device0..3.
    let result = tmp.path().join("result");
    for d in 0..4 {
        write_heads(
            &result.join(format!("dumpOutput_device{d}")),
            &stems[d * 4..d * 4 + 4],
            DumpNaming::Benchmark,
            5,
        );
    }
    std::fs::write(result.join("perf_vision_batchsize_1_device_0.txt"), "x").unwrap();
    let index = DumpIndex::scan(&[&result], None).unwrap();
    assert_eq!(index.folders().len(), 4);
    assert!(index
        .folders()
        .iter()
        .all(|f| f.naming == DumpNaming::Benchmark));
    assert_eq!(index.len(), 16);
    let report = index
        .check_case(&rec, PATCH, &Mirror::set(true), CLASSES)
        .unwrap();
    assert!(report.is_complete(), "{report}");
    assert!(report.extra.is_empty());
    // The final head (_1) was picked: value 100 * (i % 4) + 0 within its device folder.
    let t = rec.tile_names(PATCH, &Mirror::set(true)).unwrap()[5].clone();
    let bin = index.open(&t, CLASSES).unwrap();
    assert_eq!(bin.as_slice()[0], 100.0);
    assert!(bin
        .path()
        .ends_with("dumpOutput_device1/liver_1_a_0_2_0_2_0_2_5_1.bin"));
}

#[test]
fn ais_bench_numbering_is_detected_and_problems_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = record();
    let names = rec.tile_names(PATCH, &Mirror::set(true)).unwrap();
    let stems: Vec<String> = names.iter().map(|t| t.stem()).collect();
    let a = tmp.path().join("bs1");
    let b = tmp.path().join("bs2");
    write_heads(&a, &stems[..10], DumpNaming::AisBench, 5);
    write_heads(&b, &stems[11..], DumpNaming::AisBench, 1);
    // A short final head, a dump of a tile that is not in the plan, and a stray file.
    std::fs::write(
        a.join(DumpNaming::AisBench.file_name(&stems[3], 0)),
        [0u8; 8],
    )
    .unwrap();
    write_heads(
        &b,
        &["liver_1_a_0_2_0_2_1_3_0".to_string()],
        DumpNaming::AisBench,
        1,
    );
    std::fs::write(b.join("notes.bin"), b"").unwrap();
    // Dumps of another case in the same folder are not "extra" for this one.
    write_heads(
        &b,
        &["liver_2_0_2_0_2_0_2_0".to_string()],
        DumpNaming::AisBench,
        1,
    );

    let index = DumpIndex::scan(&[&a, &b], None).unwrap();
    assert!(index
        .folders()
        .iter()
        .all(|f| f.naming == DumpNaming::AisBench));
    let report = index
        .check_case(&rec, PATCH, &Mirror::set(true), CLASSES)
        .unwrap();
    assert!(!report.is_complete());
    assert_eq!(report.missing, vec![names[10].file_name()]);
    assert_eq!(report.wrong_size.len(), 1);
    assert_eq!(report.wrong_size[0].1, 8);
    assert_eq!(report.wrong_size[0].2, (CLASSES * 8 * 4) as u64);
    assert_eq!(report.extra.len(), 1);
    assert!(report.extra[0].ends_with("liver_1_a_0_2_0_2_1_3_0_0.bin"));
    assert_eq!(index.unparsed().len(), 1);
    assert!(index.open(&names[3], CLASSES).is_err());
    assert!(index.open(&names[10], CLASSES).is_err());
    let shown = report.to_string();
    assert!(
        shown.contains("1 missing") && shown.contains(&names[10].file_name()),
        "{shown}"
    );

    // Forcing benchmark numbering on ais_bench folders picks the second head (_1) instead.
    let forced = DumpIndex::scan(&[&a], Some(DumpNaming::Benchmark)).unwrap();
    assert_eq!(forced.open(&names[0], CLASSES).unwrap().as_slice()[0], 1.0);
    // The same tile in two folders is reported as a duplicate, the first kept.
    let dup = DumpIndex::scan(&[&a, &a], None).unwrap();
    assert_eq!(dup.duplicates().len(), 10);
}
