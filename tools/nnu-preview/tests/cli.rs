//! `nnu-preview` on small written volumes: a preview and a difference view are written as PNGs, bad input
//! gives `error:` and exit status 2.

use std::process::Command;

use ndarray::{s, Array3};
use nnu_volume::{write_volume, Geometry, WriteOptions};

const EXE: &str = env!("CARGO_BIN_EXE_nnu-preview");

#[test]
fn writes_previews_and_refuses_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = Geometry {
        spacing: [0.8, 0.8, 2.5],
        ..Geometry::default()
    };
    let img = Array3::<i16>::from_shape_fn((16, 40, 48), |(_, y, x)| {
        if (y as i32 - 20).pow(2) + (x as i32 - 24).pow(2) < 300 {
            60
        } else {
            -1000
        }
    });
    let mut seg = Array3::<u8>::zeros((16, 40, 48));
    seg.slice_mut(s![4..12, 12..28, 14..30]).fill(1);
    let mut reference = seg.clone();
    reference.slice_mut(s![4..12, 12..28, 26..34]).fill(2);
    let p = |n: &str| dir.path().join(n);
    let w = WriteOptions::default();
    write_volume(&p("img.nii.gz"), img.view(), &g, &w).expect("write");
    write_volume(&p("seg.nii.gz"), seg.view(), &g, &w).expect("write");
    write_volume(&p("ref.nii.gz"), reference.view(), &g, &w).expect("write");
    let short = Array3::<u8>::zeros((16, 40, 47));
    write_volume(&p("short.nii.gz"), short.view(), &g, &w).expect("write");

    let run = |args: &[&str]| {
        Command::new(EXE)
            .current_dir(dir.path())
            .args(args)
            .output()
            .expect("run nnu-preview")
    };
    let o = run(&[
        "img.nii.gz",
        "seg.nii.gz",
        "-o",
        "a.png",
        "--labels",
        "liver",
        "--window",
        "-600,1500",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&[
        "img.nii.gz",
        "seg.nii.gz",
        "--reference",
        "ref.nii.gz",
        "-o",
        "d.png",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The input flag of the other tools instead of (or beside) the positionals.
    let o = run(&["-i", "img.nii.gz", "--seg", "seg.nii.gz", "-o", "b.png"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["-i", "img.nii.gz", "seg.nii.gz", "-o", "c.png"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["img.nii.gz", "seg.nii.gz", "-o", "e.png"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let e = std::fs::read(p("e.png")).expect("png written");
    for f in ["b.png", "c.png"] {
        assert!(
            std::fs::read(p(f)).expect("png written") == e,
            "{f} differs from e.png"
        );
    }
    for f in ["a.png", "d.png"] {
        let bytes = std::fs::read(p(f)).expect("png written");
        assert_eq!(&bytes[1..4], b"PNG", "{f}");
    }
    for (args, what) in [
        (
            vec!["img.nii.gz", "short.nii.gz", "-o", "x.png"],
            "short.nii.gz",
        ),
        (
            vec!["img.nii.gz", "seg.nii.gz", "-o", "x.png", "--window", "40"],
            "window",
        ),
        (
            vec!["img.nii.gz", "missing.nii.gz", "-o", "x.png"],
            "missing.nii.gz",
        ),
        (vec!["img.nii.gz", "-o", "x.png"], "segmentation is missing"),
        (
            vec![
                "-i",
                "img.nii.gz",
                "seg.nii.gz",
                "ref.nii.gz",
                "-o",
                "x.png",
            ],
            "ref.nii.gz",
        ),
        (vec!["img.nii.gz", "seg.nii.gz"], "--output"),
    ] {
        let o = run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(what),
            "{args:?}: {err}"
        );
        assert!(!p("x.png").exists());
    }
}

/// IMAGE as a folder holding a DICOM series (`fixtures/dicom/axial`): a PNG of the size drawn from the same
/// series converted to NIfTI; a folder of several series takes the one SEG is named after (the same bytes); a folder of
/// several series without that name, a folder without DICOM files and a refused (RLE) series are errors
/// naming the folder and what is wrong.
#[test]
fn a_dicom_series_folder_is_drawn_like_its_nifti() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| dir.path().join(n);
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/dicom");
    let axial = fixtures.join("axial");
    let series = nnu_dicom::find_series(&axial).expect("series");
    let image = nnu_dicom::read_series(&series[0]).expect("read");
    assert_eq!(image.data.dim(), (8, 20, 24));
    let mut seg = Array3::<u8>::zeros((8, 20, 24));
    seg.slice_mut(s![2..6, 5..15, 6..18]).fill(1);
    seg.slice_mut(s![3..5, 8..12, 9..13]).fill(2);
    let w = WriteOptions::default();
    write_volume(&p("img.nii.gz"), image.data.view(), &image.geometry, &w).expect("write");
    write_volume(&p("seg.nii.gz"), seg.view(), &image.geometry, &w).expect("write");
    let named = format!("{}.nii.gz", series[0].case_name());
    std::fs::copy(p("seg.nii.gz"), p(&named)).expect("copy");

    let run = |image: &std::path::Path, seg: &str, png: &str| {
        Command::new(EXE)
            .current_dir(dir.path())
            .arg(image)
            .args([
                seg,
                "-o",
                png,
                "--labels",
                "liver,tumour",
                "--title",
                "series",
            ])
            .output()
            .expect("run nnu-preview")
    };
    let ok = |o: &std::process::Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    ok(&run(&p("img.nii.gz"), "seg.nii.gz", "nifti.png"));
    ok(&run(&axial, "seg.nii.gz", "dicom.png"));
    ok(&run(&fixtures, &named, "tree.png"));
    let nifti = std::fs::read(p("nifti.png")).expect("png written");
    let dicom = std::fs::read(p("dicom.png")).expect("png written");
    assert_eq!(&dicom[1..4], b"PNG");
    assert!(
        std::fs::read(p("tree.png")).expect("png written") == dicom,
        "the series chosen by name from the tree is drawn differently"
    );
    // The NIfTI header keeps the geometry in f32, which can move a printed position by a rounding step:
    // the same picture size (IHDR width and height), not the same bytes.
    assert_eq!(
        dicom[16..24],
        nifti[16..24],
        "PNG size differs from the NIfTI's"
    );

    let empty = p("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    for (image, what) in [
        (fixtures.clone(), "6 DICOM series"),
        (empty.clone(), "no DICOM image files"),
        (fixtures.join("MR_small_RLE"), "RLE Lossless"),
    ] {
        let o = run(&image, "seg.nii.gz", "x.png");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{}: {err}", image.display());
        assert!(
            err.starts_with(&format!("error: {}", image.display())) && err.contains(what),
            "{}: {err}",
            image.display()
        );
        assert!(!p("x.png").exists());
    }
}

#[path = "../../readme_synopsis.rs"]
mod readme;

#[test]
fn readme_synopsis_matches_help() {
    readme::check(EXE, "nnu-preview");
}
