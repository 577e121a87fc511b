//! Bad input gives clear errors (or nnU-Net's documented behaviour), never a panic.

use ndarray::{Array3, Array4};
use nnu_preprocessing::{
    export_segmentation, preprocess_case, ExportOptions, ItkGeometry, Normalization,
    PreprocessError, PreprocessParams,
};

fn nonct() -> Normalization {
    Normalization::NonCt {
        use_nonzero_mask: false,
    }
}

fn image() -> Array3<f32> {
    Array3::from_shape_fn((6, 7, 8), |(z, y, x)| (z + y + x) as f32 + 1.0)
}

fn run(
    ch: Vec<Array3<f32>>,
    spacing: [f64; 3],
    params: &PreprocessParams,
) -> Result<(), PreprocessError> {
    preprocess_case(ch, &ItkGeometry::from_spacing_zyx(spacing), params).map(|_| ())
}

#[test]
fn all_zero_image() {
    let p = PreprocessParams::new([1.0; 3], vec![nonct()]);
    let e = run(vec![Array3::zeros((4, 5, 6))], [1.0; 3], &p).unwrap_err();
    assert!(
        matches!(e, PreprocessError::AllZero { shape: [4, 5, 6] }),
        "{e}"
    );
}

#[test]
fn infinite_voxel() {
    let p = PreprocessParams::new([1.0; 3], vec![nonct()]);
    let mut im = image();
    im[[2, 3, 4]] = f32::NEG_INFINITY;
    let e = run(vec![im], [1.0; 3], &p).unwrap_err();
    assert!(
        matches!(
            e,
            PreprocessError::NonFinite {
                channel: 0,
                index: [2, 3, 4],
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn nan_voxels_become_zero() {
    let p = PreprocessParams::new([1.0; 3], vec![Normalization::NoNorm]);
    let mut im = image();
    im[[2, 3, 4]] = f32::NAN;
    let (out, _) = preprocess_case(vec![im], &ItkGeometry::from_spacing_zyx([1.0; 3]), &p).unwrap();
    assert_eq!(out[[0, 2, 3, 4]], 0.0);
}

#[test]
fn bad_spacings() {
    let p = PreprocessParams::new([1.0; 3], vec![nonct()]);
    for s in [[0.0, 1.0, 1.0], [1.0, -0.5, 1.0], [1.0, 1.0, f64::INFINITY]] {
        let e = run(vec![image()], s, &p).unwrap_err();
        assert!(matches!(e, PreprocessError::InvalidSpacing(_)), "{e}");
    }
    let p = PreprocessParams::new([1.0, 0.0, 1.0], vec![nonct()]);
    assert!(matches!(
        run(vec![image()], [1.0; 3], &p),
        Err(PreprocessError::InvalidSpacing(_))
    ));
}

#[test]
fn channel_mismatches() {
    let p = PreprocessParams::new([1.0; 3], vec![nonct(), nonct()]);
    let e = run(vec![image(), Array3::ones((6, 7, 9))], [1.0; 3], &p).unwrap_err();
    assert!(matches!(e, PreprocessError::ShapeMismatch { .. }), "{e}");
    let e = run(vec![image()], [1.0; 3], &p).unwrap_err();
    assert!(
        matches!(
            e,
            PreprocessError::ChannelCount {
                found: 2,
                expected: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(matches!(
        run(vec![], [1.0; 3], &p),
        Err(PreprocessError::NoChannels)
    ));
}

#[test]
fn bad_transpose() {
    let mut p = PreprocessParams::new([1.0; 3], vec![nonct()]);
    p.transpose_forward = [0, 0, 2];
    assert!(matches!(
        run(vec![image()], [1.0; 3], &p),
        Err(PreprocessError::InvalidTranspose(_))
    ));
}

#[test]
fn single_slice_image_is_a_one_slice_volume() {
    // A 2-D image arrives as (1, y, x); it is preprocessed as one slice (upsampled in z if asked).
    let p = PreprocessParams::new([0.5, 1.0, 1.0], vec![nonct()]);
    let im = Array3::from_shape_fn((1, 7, 8), |(_, y, x)| (y * x) as f32 + 1.0);
    let (out, props) =
        preprocess_case(vec![im], &ItkGeometry::from_spacing_zyx([1.0; 3]), &p).unwrap();
    assert_eq!(out.shape(), &[1, 2, 7, 8]);
    assert_eq!(props.size_after_resampling, [2, 7, 8]);
    assert!(out.iter().all(|v| v.is_finite()));
}

#[test]
fn export_rejects_inconsistent_properties() {
    let p = PreprocessParams::new([1.0; 3], vec![nonct()]);
    let (_, mut props) =
        preprocess_case(vec![image()], &ItkGeometry::from_spacing_zyx([1.0; 3]), &p).unwrap();
    let probs = Array4::<f32>::zeros((2, 6, 7, 8));
    props.crop_bbox[2] = [0, 9];
    let e = export_segmentation(probs.view(), &props, &p, &ExportOptions::default()).unwrap_err();
    assert!(matches!(e, PreprocessError::InvalidBbox { .. }), "{e}");
    let many = Array4::<f32>::zeros((300, 6, 7, 8));
    let (_, props) =
        preprocess_case(vec![image()], &ItkGeometry::from_spacing_zyx([1.0; 3]), &p).unwrap();
    let e = export_segmentation(many.view(), &props, &p, &ExportOptions::default()).unwrap_err();
    assert!(matches!(e, PreprocessError::TooManyClasses(300)), "{e}");
}

/// A case whose preprocessed volume cannot exist (2 voxels per axis at 50 m spacing resampled to 1 mm:
/// 10^15 f32 voxels, past any address space) is an error naming the buffer and its bytes, not an abort
/// of the process (issue 20).
#[test]
fn a_preprocessed_volume_that_cannot_be_allocated_is_an_error() {
    let p = PreprocessParams::new([1.0; 3], vec![nonct()]);
    let im = Array3::from_elem((2, 2, 2), 5.0f32);
    let e = run(vec![im], [50_000.0; 3], &p).unwrap_err();
    assert!(
        matches!(
            e,
            PreprocessError::OutOfMemory {
                what: "the preprocessed volume",
                bytes: 4_000_000_000_000_000
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("out of memory") && msg.contains("4000000000000000 bytes"),
        "{msg}"
    );
}

/// The export's segmentation in the original frame (here claimed to be 2^50 voxels) that cannot be
/// allocated is an error too.
#[test]
fn an_export_that_cannot_be_allocated_is_an_error() {
    let p = PreprocessParams::new([1.0; 3], vec![nonct()]);
    let (_, mut props) =
        preprocess_case(vec![image()], &ItkGeometry::from_spacing_zyx([1.0; 3]), &p).unwrap();
    props.original_size_of_raw_data = [1 << 20, 1 << 20, 1 << 10];
    let probs = Array4::<f32>::zeros((2, 6, 7, 8));
    let e = export_segmentation(probs.view(), &props, &p, &ExportOptions::default()).unwrap_err();
    assert!(
        matches!(
            e,
            PreprocessError::OutOfMemory {
                what: "the segmentation",
                bytes: 1_125_899_906_842_624
            }
        ),
        "{e:?}"
    );
}
