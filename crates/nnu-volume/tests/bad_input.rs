//! Damaged and hostile files: each must give a typed error naming the file, never a panic or a huge
//! allocation.

use std::path::{Path, PathBuf};

use ndarray::Array3;
use nnu_volume::{
    read_header, read_labels, read_volume, write_volume, Geometry, VolumeError, WriteOptions,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/nifti")
        .join(name)
}

/// A small valid int16 volume written by us, as raw (.nii) bytes.
fn valid_nii(dir: &Path) -> Vec<u8> {
    let p = dir.join("ok.nii");
    let a = Array3::<i16>::from_shape_fn((8, 9, 10), |(z, y, x)| (z * 90 + y * 10 + x) as i16);
    write_volume(&p, a.view(), &Geometry::default(), &WriteOptions::default()).expect("write");
    std::fs::read(&p).expect("read back")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    p
}

fn assert_names_file(err: &VolumeError, p: &Path) {
    assert_eq!(err.path(), p);
    assert!(err.to_string().contains(&*p.to_string_lossy()), "{err}");
}

#[test]
fn truncated_raw_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ok = valid_nii(dir.path());
    let p = write(dir.path(), "trunc.nii", &ok[..ok.len() - 100]);
    let err = read_volume(&p).unwrap_err();
    assert!(matches!(err, VolumeError::Truncated { .. }), "{err}");
    assert_names_file(&err, &p);
    // shorter than a header
    let p = write(dir.path(), "tiny.nii", &ok[..100]);
    assert!(matches!(
        read_volume(&p).unwrap_err(),
        VolumeError::Truncated { .. }
    ));
}

#[test]
fn truncated_gzip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gz = gzip(&valid_nii(dir.path()));
    for cut in [gz.len() - 4, gz.len() / 2, 30] {
        let p = write(dir.path(), "trunc.nii.gz", &gz[..cut]);
        let err = read_volume(&p).unwrap_err();
        assert!(
            matches!(
                err,
                VolumeError::Truncated { .. } | VolumeError::CorruptGzip { .. }
            ),
            "cut {cut}: {err}"
        );
        assert_names_file(&err, &p);
        // Never "needs N bytes ... holds N" (or more): a cut in the trailer says so.
        if let VolumeError::Truncated {
            needed, available, ..
        } = err
        {
            assert!(available < needed, "cut {cut}: {err}");
        }
    }
}

#[test]
fn corrupt_gzip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut gz = gzip(&valid_nii(dir.path()));
    let n = gz.len();
    gz[n - 6] ^= 0x5a; // CRC / length trailer
    let p = write(dir.path(), "crc.nii.gz", &gz);
    let err = read_volume(&p).unwrap_err();
    assert!(matches!(err, VolumeError::CorruptGzip { .. }), "{err}");

    // our own parallel members, with a flipped byte inside the deflate data
    let a = Array3::<i16>::from_shape_fn((40, 50, 60), |(z, y, x)| (z * y + x) as i16);
    let p = dir.path().join("par.nii.gz");
    write_volume(&p, a.view(), &Geometry::default(), &WriteOptions::default()).expect("write");
    let mut bytes = std::fs::read(&p).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let p = write(dir.path(), "par_bad.nii.gz", &bytes);
    let err = read_volume(&p).unwrap_err();
    assert!(
        matches!(
            err,
            VolumeError::CorruptGzip { .. } | VolumeError::Truncated { .. }
        ),
        "{err}"
    );
    assert_names_file(&err, &p);
}

#[test]
fn wrong_magic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ok = valid_nii(dir.path());
    ok[344..348].copy_from_slice(b"ni1\0"); // header/image pair magic in a single file
    let p = write(dir.path(), "magic.nii", &ok);
    let err = read_volume(&p).unwrap_err();
    assert!(matches!(err, VolumeError::BadMagic { .. }), "{err}");
    assert_names_file(&err, &p);
    let p = write(dir.path(), "text.nii.gz", &gzip(&[b'x'; 2000]));
    assert!(matches!(
        read_volume(&p).unwrap_err(),
        VolumeError::BadMagic { .. }
    ));
    let p = write(dir.path(), "empty.nii", b"");
    assert!(matches!(
        read_header(&p).unwrap_err(),
        VolumeError::Truncated { .. }
    ));
}

fn set_dims(bytes: &mut [u8], dims: [i16; 8]) {
    for (i, d) in dims.iter().enumerate() {
        bytes[40 + 2 * i..42 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
}

#[test]
fn lying_header_is_refused_before_allocating() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ok = valid_nii(dir.path());
    // 32767^3 * 4 channels of f64: ~1 PB claimed by a 100-byte gzip file
    set_dims(&mut ok, [4, 32767, 32767, 32767, 4, 1, 1, 1]);
    ok[70..72].copy_from_slice(&64i16.to_le_bytes());
    let p = write(dir.path(), "liar.nii.gz", &gzip(&ok[..352]));
    let err = read_volume(&p).unwrap_err();
    assert!(
        matches!(
            err,
            VolumeError::ImplausibleSize { .. } | VolumeError::UnsupportedDims { .. }
        ),
        "{err}"
    );
    assert_names_file(&err, &p);
    // uncompressed: claims more than the file length
    let p = write(dir.path(), "liar.nii", &ok);
    let err = read_volume(&p).unwrap_err();
    assert!(
        matches!(
            err,
            VolumeError::Truncated { .. } | VolumeError::UnsupportedDims { .. }
        ),
        "{err}"
    );
    // a 3-D lie that fits the size limits
    let mut ok = valid_nii(dir.path());
    set_dims(&mut ok, [3, 30000, 30000, 30000, 1, 1, 1, 1]);
    let p = write(dir.path(), "liar3.nii.gz", &gzip(&ok));
    assert!(matches!(
        read_volume(&p).unwrap_err(),
        VolumeError::ImplausibleSize { .. }
    ));
}

#[test]
fn unsupported_dims() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ok = valid_nii(dir.path());
    for dims in [
        [2, 8, 9, 1, 1, 1, 1, 1],
        [5, 10, 9, 8, 1, 2, 1, 1],
        [0, 10, 9, 8, 1, 1, 1, 1],
        [3, 10, -9, 8, 1, 1, 1, 1],
        [3, 0, 9, 8, 1, 1, 1, 1],
    ] {
        let mut b = ok.clone();
        set_dims(&mut b, dims);
        let p = write(dir.path(), "dims.nii", &b);
        let err = read_volume(&p).unwrap_err();
        assert!(
            matches!(err, VolumeError::UnsupportedDims { .. }),
            "{dims:?}: {err}"
        );
        assert_names_file(&err, &p);
    }
    // 4-D with t = 1 is 3-D; with 2 channels read_volume refuses (read_volume_channels reads it)
    let mut b = ok.clone();
    set_dims(&mut b, [4, 10, 9, 8, 1, 1, 1, 1]);
    assert_eq!(
        read_volume(&write(dir.path(), "t1.nii", &b))
            .expect("t=1")
            .shape_zyx(),
        [8, 9, 10]
    );
    let err = read_volume(&fixture("i32_4d_channels.nii.gz")).unwrap_err();
    assert!(matches!(err, VolumeError::UnsupportedDims { .. }), "{err}");
}

#[test]
fn unsupported_datatype() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = valid_nii(dir.path());
    b[70..72].copy_from_slice(&32i16.to_le_bytes()); // complex64
    let p = write(dir.path(), "complex.nii", &b);
    let err = read_volume(&p).unwrap_err();
    assert!(
        matches!(err, VolumeError::UnsupportedDatatype { code: 32, .. }),
        "{err}"
    );
    assert_names_file(&err, &p);
}

#[test]
fn missing_file() {
    let p = Path::new("/nonexistent/dir/case.nii.gz");
    let err = read_volume(p).unwrap_err();
    assert!(matches!(err, VolumeError::Io { .. }));
    assert_names_file(&err, p);
}

#[test]
fn labels_out_of_range() {
    // int16 values up to 899 are not u8 labels
    let dir = tempfile::tempdir().expect("tempdir");
    valid_nii(dir.path());
    let err = read_labels(&dir.path().join("ok.nii")).unwrap_err();
    assert!(
        matches!(err, VolumeError::ValueOutOfRange { target: "u8", .. }),
        "{err}"
    );
    // scaled values that are not integers
    let err = read_labels(&fixture("u16_scaled.nii.gz")).unwrap_err();
    assert!(matches!(err, VolumeError::ValueOutOfRange { .. }), "{err}");
    let ok = read_labels(&fixture("u8_sform_only_flipped.nii")).expect("u8 labels");
    assert!(ok.data.iter().all(|&v| v <= 3));
}

#[test]
fn bad_geometry_for_writing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Array3::<u8>::zeros((2, 3, 4));
    let p = dir.path().join("g.nii.gz");
    let g = Geometry {
        spacing: [1.0, 0.0, 1.0],
        ..Geometry::default()
    };
    let err = write_volume(&p, a.view(), &g, &WriteOptions::default()).unwrap_err();
    assert!(matches!(err, VolumeError::InvalidWrite { .. }), "{err}");
    assert!(!p.exists());
    let big = Array3::<u8>::zeros((1, 1, 40000));
    let err = write_volume(
        &p,
        big.view(),
        &Geometry::default(),
        &WriteOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, VolumeError::InvalidWrite { .. }), "{err}");
    // nothing left behind
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}

#[test]
fn lying_member_size_fields_change_nothing() {
    // Our writer's `Nu` subfield (compressed and uncompressed member length at bytes 16..24 of each member
    // header) only lets the reader inflate members in parallel; a wrong value must neither allocate by it
    // nor change what is read, and real damage is still reported.
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Array3::<i16>::from_shape_fn((40, 256, 256), |(z, y, x)| (z * 7 + y * 3 + x) as i16);
    let p = dir.path().join("ok.nii.gz");
    write_volume(&p, a.view(), &Geometry::default(), &WriteOptions::default()).expect("write");
    let good = std::fs::read(&p).expect("read");
    let want = read_volume(&p).expect("read").data;
    let patch = |at: usize, v: u32| {
        let mut b = good.clone();
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        b
    };
    let clen = u32::from_le_bytes(good[16..20].try_into().expect("4 bytes"));
    let rlen = u32::from_le_bytes(good[20..24].try_into().expect("4 bytes"));
    for (what, bytes) in [
        ("uncompressed length u32::MAX", patch(20, u32::MAX)),
        ("uncompressed length + 1", patch(20, rlen + 1)),
        ("uncompressed length - 1", patch(20, rlen - 1)),
        ("compressed length past the end", patch(16, u32::MAX)),
        ("compressed length - 1", patch(16, clen - 1)),
        ("compressed length 0", patch(16, 0)),
    ] {
        let q = write(dir.path(), "liar_member.nii.gz", &bytes);
        let got = read_volume(&q).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(got.data, want, "{what}");
    }
    // a truncated multi-member file is still an error naming the file
    for cut in [good.len() - 3, good.len() / 2, 100] {
        let q = write(dir.path(), "cut_members.nii.gz", &good[..cut]);
        let err = read_volume(&q).unwrap_err();
        assert!(
            matches!(
                err,
                VolumeError::Truncated { .. } | VolumeError::CorruptGzip { .. }
            ),
            "cut {cut}: {err}"
        );
        assert_names_file(&err, &q);
    }
}

/// A valid gzip followed by zero padding (what tape and block tools leave; `gzip -t`, SimpleITK and
/// nibabel accept it) reads like the unpadded file, for a plain gzip stream and for our indexed members.
/// Non-zero bytes after the stream are still an error.
#[test]
fn trailing_zero_padding_after_gzip_is_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = valid_nii(dir.path());
    let want = read_volume(&write(dir.path(), "ok.nii", &raw)).expect("raw");
    let ours = dir.path().join("ours.nii.gz");
    write_volume(
        &ours,
        want.data.mapv(|v| v as i16).view(),
        &want.geometry,
        &WriteOptions::default(),
    )
    .expect("write");
    for (name, gz) in [
        ("plain", gzip(&raw)),
        ("ours", std::fs::read(&ours).expect("read")),
    ] {
        for pad in [1usize, 7, 512, 4096] {
            let mut bytes = gz.clone();
            bytes.extend(std::iter::repeat_n(0u8, pad));
            let p = write(dir.path(), &format!("{name}_{pad}.nii.gz"), &bytes);
            let got = read_volume(&p).unwrap_or_else(|e| panic!("{name} + {pad} zeros: {e}"));
            assert_eq!(got, want, "{name} + {pad} zeros");
        }
        let mut bytes = gz.clone();
        bytes.extend([0, 0, 7, 0]);
        let p = write(dir.path(), &format!("{name}_junk.nii.gz"), &bytes);
        let err = read_volume(&p).expect_err("junk after the stream");
        assert_names_file(&err, &p);
    }
}
