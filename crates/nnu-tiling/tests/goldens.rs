//! Comparisons against goldens made by nnU-Net 1.7.1 itself (`scripts/goldens/tiling_make.py`,
//! `fixtures/tiling/README.md`): Gaussian maps bit-identical, steps and padding identical, merged
//! probabilities within 1e-6.

use std::path::PathBuf;

use ndarray::{Array4, ArrayView4};
use nnu_tiling::{
    compute_steps, extract_tile, gaussian_importance_map, pad_nd_image, Aggregator,
    AggregatorOptions, Mirror, MirrorSet, TileGrid,
};
use serde::Deserialize;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiling")
}

fn read_json<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = fixtures().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_f32(name: &str) -> Vec<f32> {
    nnu_bins::read_f32_file(&fixtures().join(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn fnv1a64(bytes: impl Iterator<Item = u8>) -> u64 {
    bytes.fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[derive(Deserialize)]
struct GaussianCase {
    patch: [usize; 3],
    fnv1a64: String,
    samples: Vec<Sample>,
    file: Option<String>,
}

#[derive(Deserialize)]
struct Sample {
    index: [usize; 3],
    bits: u32,
}

#[test]
fn gaussian_is_bit_identical() {
    let cases: Vec<GaussianCase> = read_json("gaussian.json");
    assert!(cases.len() >= 10);
    for case in cases {
        let g = gaussian_importance_map(case.patch).unwrap();
        for s in &case.samples {
            assert_eq!(
                g[s.index].to_bits(),
                s.bits,
                "patch {:?} at {:?}",
                case.patch,
                s.index
            );
        }
        let hash = fnv1a64(g.iter().flat_map(|v| v.to_le_bytes()));
        assert_eq!(
            format!("{hash:016x}"),
            case.fnv1a64,
            "patch {:?}",
            case.patch
        );
        if let Some(file) = &case.file {
            let expected = read_f32(file);
            let got: Vec<u32> = g.iter().map(|v| v.to_bits()).collect();
            let expected: Vec<u32> = expected.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, expected, "patch {:?}", case.patch);
        }
    }
}

#[derive(Deserialize)]
struct StepsCase {
    patch: [usize; 3],
    image: [usize; 3],
    step_size: f64,
    steps: [Vec<usize>; 3],
}

#[test]
fn steps_are_identical() {
    let cases: Vec<StepsCase> = read_json("steps.json");
    assert!(cases.len() > 300);
    for case in cases {
        let got = compute_steps(case.patch, case.image, case.step_size).unwrap();
        assert_eq!(
            got, case.steps,
            "patch {:?} image {:?} step {}",
            case.patch, case.image, case.step_size
        );
        let grid = TileGrid::new(case.image, case.patch, case.step_size).unwrap();
        assert_eq!(grid.steps(), &case.steps);
    }
}

#[derive(Deserialize)]
struct PadCase {
    shape: [usize; 4],
    patch: [usize; 3],
    padded_shape: [usize; 4],
    pad_below: [usize; 3],
    pad_above: [usize; 3],
    slicer: Vec<[usize; 2]>,
}

#[test]
fn padding_is_identical() {
    let cases: Vec<PadCase> = read_json("pad.json");
    for case in cases {
        let [c, z, y, x] = case.shape;
        let img = Array4::from_shape_fn((c, z, y, x), |(a, b, d, e)| {
            (((a * z + b) * y + d) * x + e + 1) as f32
        });
        let (padded, pad) = pad_nd_image(img.view(), case.patch).unwrap();
        assert_eq!(padded.shape(), case.padded_shape, "{:?}", case.shape);
        assert_eq!(pad.below, case.pad_below);
        assert_eq!(pad.above(), case.pad_above);
        let ranges: Vec<[usize; 2]> = pad.slicer().iter().map(|r| [r.start, r.end]).collect();
        assert_eq!(ranges, case.slicer[1..]);
        assert_eq!(padded.sum(), img.sum());
    }
}

#[derive(Deserialize)]
struct NetParams {
    a: Vec<Vec<u32>>,
    cz: Vec<u32>,
    cy: Vec<u32>,
    cx: Vec<u32>,
    d: Vec<u32>,
}

#[derive(Deserialize)]
struct MergeCase {
    name: String,
    shape: [usize; 4],
    patch: [usize; 3],
    num_classes: usize,
    step_size: f64,
    do_mirroring: bool,
    mirror_axes: Vec<usize>,
    use_gaussian: bool,
    net: NetParams,
}

/// The golden script's `FakeNet`, with the same f32 operations in the same order.
fn fake_net(net: &NetParams, input: ArrayView4<f32>, classes: usize) -> Array4<f32> {
    let f = f32::from_bits;
    let (cin, pz, py, px) = input.dim();
    Array4::from_shape_fn((classes, pz, py, px), |(k, z, y, x)| {
        let mut acc = input[[0, z, y, x]] * f(net.a[k][0]);
        for c in 1..cin {
            acc += input[[c, z, y, x]] * f(net.a[k][c]);
        }
        let ramp = ((f(net.cz[k]) * z as f32 + f(net.cy[k]) * y as f32) + f(net.cx[k]) * x as f32)
            + f(net.d[k]);
        acc + ramp
    })
}

fn run_merge(
    case: &MergeCase,
    order: impl Fn(&TileGrid, MirrorSet) -> Vec<(usize, Mirror)>,
) -> Array4<f32> {
    let [c, z, y, x] = case.shape;
    let input = Array4::from_shape_vec(
        (c, z, y, x),
        read_f32(&format!("merge_{}_input.f32", case.name)),
    )
    .unwrap();
    let grid = TileGrid::new([z, y, x], case.patch, case.step_size).unwrap();
    let mirrors = MirrorSet::nnunet(case.do_mirroring, &case.mirror_axes).unwrap();
    let options = AggregatorOptions {
        mirrors,
        use_gaussian: case.use_gaussian,
    };
    let mut agg = Aggregator::new(case.num_classes, grid.clone(), options).unwrap();
    let [pz, py, px] = case.patch;
    let mut buf = vec![0.0f32; c * pz * py * px];
    for (t, m) in order(&grid, mirrors) {
        let tile = grid.tile(t).unwrap();
        extract_tile(input.view(), &grid, &tile, m, &mut buf).unwrap();
        let tile_in = ArrayView4::from_shape((c, pz, py, px), &buf).unwrap();
        let logits = fake_net(&case.net, tile_in, case.num_classes);
        agg.add(t, m, logits.view()).unwrap();
    }
    assert!(agg.is_complete());
    agg.finish().unwrap()
}

fn check(case: &MergeCase, got: &Array4<f32>, tol: f32) {
    let expected = read_f32(&format!("merge_{}_probs.f32", case.name));
    let [_, z, y, x] = case.shape;
    assert_eq!(got.shape(), [case.num_classes, z, y, x], "{}", case.name);
    let mut worst = 0.0f32;
    for (g, e) in got.iter().zip(&expected) {
        worst = worst.max((g - e).abs());
    }
    eprintln!("{}: max abs diff {worst:e}", case.name);
    assert!(
        worst <= tol,
        "{}: max abs diff {worst:e} > {tol:e}",
        case.name
    );
}

#[test]
fn merge_matches_nnunet_in_order() {
    let cases: Vec<MergeCase> = read_json("merge.json");
    assert!(cases.len() >= 6);
    for case in &cases {
        let got = run_merge(case, |grid, mirrors| {
            grid.tiles()
                .flat_map(|t| mirrors.iter().map(move |m| (t.index, m)))
                .collect()
        });
        check(case, &got, 1e-6);
    }
}

#[test]
fn merge_matches_nnunet_out_of_order() {
    let cases: Vec<MergeCase> = read_json("merge.json");
    for case in &cases {
        // Mirrors outer and tiles inner, both reversed: every tile is in flight at once.
        let got = run_merge(case, |grid, mirrors| {
            let mut order = Vec::new();
            let ms: Vec<Mirror> = mirrors.iter().collect();
            for m in ms.iter().rev() {
                for t in (0..grid.len()).rev() {
                    order.push((t, *m));
                }
            }
            order
        });
        check(case, &got, 1e-6);
    }
}
