//! Properties of generated phantoms: determinism, plausible HU per label, world-consistent anatomy under
//! flipped axes, and the nnU-Net raw dataset layout.

use nnu_synth::{case_name, generate, write_dataset, Anatomy, PhantomSpec};
use nnu_volume::{read_header, read_labels, read_volume, WriteOptions};

fn spec(seed: u64) -> PhantomSpec {
    PhantomSpec::new([20, 48, 56], [5.0, 3.0, 3.0], seed)
}

#[test]
fn same_seed_same_bytes_on_any_thread_count() {
    let a = generate(&spec(3)).expect("generate");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let b = pool.install(|| generate(&spec(3))).expect("generate");
    assert_eq!(a.image.data, b.image.data);
    assert_eq!(a.labels.data, b.labels.data);
    let c = generate(&spec(4)).expect("generate");
    assert_ne!(a.image.data, c.image.data);
}

#[test]
fn intensities_match_the_labels() {
    for seed in 0..6 {
        let p = generate(&spec(seed)).expect("generate");
        let mean = |label: u8| {
            let v: Vec<f64> = p
                .image
                .data
                .iter()
                .zip(p.labels.data.iter())
                .filter(|(_, &l)| l == label)
                .map(|(&h, _)| f64::from(h))
                .collect();
            (v.iter().sum::<f64>() / v.len().max(1) as f64, v.len())
        };
        let (liver, n_liver) = mean(1);
        assert!(n_liver > 500, "seed {seed}: liver has {n_liver} voxels");
        assert!(
            (50.0..75.0).contains(&liver),
            "seed {seed}: liver mean {liver}"
        );
        let (tumour, n_tumour) = mean(2);
        if p.tumours > 0 && n_tumour > 0 {
            assert!(
                liver - tumour > 15.0,
                "seed {seed}: liver {liver} vs tumour {tumour}"
            );
        }
        // corners are air, the volume has fat and bone
        assert_eq!(p.image.data[[0, 0, 0]], -1024);
        assert!(p.image.data.iter().any(|&v| (-130..=-70).contains(&v)));
        assert!(p.image.data.iter().any(|&v| v > 300));
        assert!(p.labels.data.iter().all(|&l| l <= 2));
    }
}

#[test]
fn tumour_counts_cover_zero_to_three() {
    let counts: Vec<usize> = (0..24)
        .map(|s| generate(&spec(s)).expect("generate").tumours)
        .collect();
    for n in 0..=3 {
        assert!(
            counts.contains(&n),
            "no case with {n} tumours in {counts:?}"
        );
    }
}

#[test]
fn flipped_axis_mirrors_the_anatomy() {
    let a = generate(&spec(9)).expect("generate");
    for axis in 0..3 {
        let b = generate(&spec(9).flipped(axis)).expect("generate");
        let mut mirrored = a.labels.data.clone();
        mirrored.invert_axis(ndarray::Axis(2 - axis));
        assert_eq!(b.labels.data, mirrored, "axis {axis}");
        // the world position of the volume's centre is unchanged
        let c = |g: &nnu_volume::Geometry| g.index_to_world_zyx([9.5, 23.5, 27.5]);
        let (ca, cb) = (c(&a.image.geometry), c(&b.image.geometry));
        assert!(
            (0..3).all(|i| (ca[i] - cb[i]).abs() < 1e-9),
            "{ca:?} {cb:?}"
        );
    }
    // liver on the patient's right: LPS -x, i.e. low x indices for the identity direction
    let lab = &a.labels.data;
    let (mut left, mut right) = (0usize, 0usize);
    for ((_, _, x), &l) in lab.indexed_iter() {
        if l == 1 {
            if x < lab.dim().2 / 2 {
                right += 1
            } else {
                left += 1
            }
        }
    }
    assert!(right > 4 * left, "liver voxels right {right} left {left}");
}

#[test]
fn invalid_specs_are_rejected() {
    assert!(generate(&PhantomSpec::new([0, 4, 4], [1.0; 3], 0)).is_err());
    assert!(generate(&PhantomSpec::new([4, 4, 4], [1.0, -1.0, 1.0], 0)).is_err());
    let mut s = spec(0);
    s.direction[0] = 2.0;
    let err = generate(&s).unwrap_err();
    assert!(err.to_string().contains("direction"), "{err}");
}

#[test]
fn dataset_layout_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = PhantomSpec::new([12, 32, 40], [2.5, 1.5, 1.5], 100).flipped(0);
    let mut seen = 0;
    let cases = write_dataset(dir.path(), &base, 3, &WriteOptions::default(), |_| {
        seen += 1
    })
    .expect("dataset");
    assert_eq!(seen, 3);
    assert_eq!(cases[2].name, case_name(2));
    for c in &cases {
        assert!(c
            .image
            .ends_with(format!("imagesTr/{}_0000.nii.gz", c.name)));
        assert!(c.label.ends_with(format!("labelsTr/{}.nii.gz", c.name)));
        let img = read_volume(&c.image).expect("image");
        let lab = read_labels(&c.label).expect("labels");
        assert_eq!(img.geometry, lab.geometry);
        assert_eq!(img.shape_zyx(), [12, 32, 40]);
        assert_eq!(
            read_header(&c.image).expect("header").datatype,
            nnu_volume::DataType::I16
        );
        assert!((img.geometry.direction[0] + 1.0).abs() < 1e-12);
    }
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("dataset.json")).expect("json"),
    )
    .expect("valid");
    assert_eq!(json["modality"]["0"], "CT");
    assert_eq!(json["labels"]["1"], "liver");
    assert_eq!(json["labels"]["2"], "tumor");
    assert_eq!(json["numTraining"], 3);
    assert_eq!(
        json["training"][1]["image"],
        "./imagesTr/phantom_001.nii.gz"
    );
    assert_eq!(
        json["training"][1]["label"],
        "./labelsTr/phantom_001.nii.gz"
    );
}

fn full(seed: u64) -> PhantomSpec {
    PhantomSpec {
        anatomy: Anatomy::Full,
        ..PhantomSpec::new([24, 64, 72], [5.0, 2.5, 2.5], seed)
    }
}

#[test]
fn full_anatomy_is_deterministic_and_mirrors_under_flips() {
    let a = generate(&full(5)).expect("generate");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let b = pool.install(|| generate(&full(5))).expect("generate");
    assert_eq!(a.image.data, b.image.data);
    assert_eq!(a.labels.data, b.labels.data);
    let basic = generate(&PhantomSpec {
        anatomy: Anatomy::Basic,
        ..full(5)
    })
    .expect("generate");
    assert_ne!(a.image.data, basic.image.data);
    // the same draws place the same number of tumours at both levels
    assert_eq!(a.tumours, basic.tumours);
    let flipped = generate(&full(5).flipped(0)).expect("generate");
    let mut mirrored = a.labels.data.clone();
    mirrored.invert_axis(ndarray::Axis(2));
    assert_eq!(flipped.labels.data, mirrored);
}

#[test]
fn full_anatomy_has_vessels_kidneys_and_muscle() {
    for seed in 0..4 {
        let p = generate(&full(seed)).expect("generate");
        let (img, lab) = (&p.image.data, &p.labels.data);
        let liver: Vec<f64> = img
            .iter()
            .zip(lab.iter())
            .filter(|(_, &l)| l == 1)
            .map(|(&h, _)| f64::from(h))
            .collect();
        let mean = liver.iter().sum::<f64>() / liver.len() as f64;
        // the parenchyma dominates; vessels (labelled liver) are 45 to 80 HU brighter
        assert!(
            (50.0..80.0).contains(&mean),
            "seed {seed}: liver mean {mean}"
        );
        let bright = liver.iter().filter(|&&h| h > mean + 40.0).count();
        assert!(
            bright > 20,
            "seed {seed}: {bright} bright liver voxels (vessels)"
        );
        // kidneys: enhancing cortex (140 to 190 HU) outside the liver label, in the posterior half
        let ny = img.dim().1;
        let cortex = img
            .indexed_iter()
            .filter(|((_, y, _), &h)| *y > ny / 2 && (150..=200).contains(&h))
            .filter(|(i, _)| lab[*i] == 0)
            .count();
        assert!(cortex > 200, "seed {seed}: {cortex} kidney cortex voxels");
        // the tumours stay darker than the liver
        let tumour: Vec<f64> = img
            .iter()
            .zip(lab.iter())
            .filter(|(_, &l)| l == 2)
            .map(|(&h, _)| f64::from(h))
            .collect();
        if !tumour.is_empty() {
            let t = tumour.iter().sum::<f64>() / tumour.len() as f64;
            assert!(mean - t > 15.0, "seed {seed}: liver {mean} tumour {t}");
        }
        assert!(img.iter().all(|&v| v >= -1024) && lab.iter().all(|&l| l <= 2));
    }
}
