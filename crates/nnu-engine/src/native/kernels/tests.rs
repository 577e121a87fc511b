//! Every kernel against a straightforward f64 reference on `(c, z, y, x)` arrays.
//!
//! Tolerance (f32 kernels): each output element within `1e-5 * (sum of |products| + |bias|) + 1e-6` of
//! the f64 reference, i.e. relative to the magnitude of the terms summed (f32 accumulation over up to a few
//! thousand terms, in a different order than the reference).

use ndarray::{Array4, ArrayView4};

use super::*;

/// Deterministic uniform values in [-1, 1) (64-bit LCG, high bits).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
    fn array(&mut self, c: usize, d: [usize; 3]) -> Array4<f32> {
        Array4::from_shape_vec((c, d[0], d[1], d[2]), self.vec(c * d[0] * d[1] * d[2])).unwrap()
    }
}

fn isas() -> Vec<Isa> {
    [Isa::Amx, Isa::Avx512, Isa::Avx2, Isa::Portable]
        .into_iter()
        .filter(|i| i.supported())
        .collect()
}

fn act_of(a: ArrayView4<f32>) -> Act {
    let s = a.shape();
    let mut act = Act::try_zeros(s[0], [s[1], s[2], s[3]]).unwrap();
    act.load_cdhw(a);
    act
}

fn to_array(a: &Act) -> Array4<f32> {
    let [z, y, x] = a.dims();
    let mut arr = Array4::zeros((a.channels(), z, y, x));
    a.store_cdhw(arr.view_mut());
    arr
}

/// Padding lanes of the last block are 0.
fn assert_pad_lanes_zero(a: &Act) {
    let c = a.channels();
    if c.is_multiple_of(LANES) {
        return;
    }
    let voxels: usize = a.dims().iter().product();
    let data = a.as_slice();
    let b = c / LANES;
    for v in 0..voxels {
        for l in c % LANES..LANES {
            assert_eq!(
                data[(b * voxels + v) * LANES + l],
                0.0,
                "padding lane {l} of voxel {v}"
            );
        }
    }
}

/// Reference convolution: (value, sum of |terms|) per output element.
fn ref_conv(
    x: &Array4<f32>,
    spec: &ConvSpec,
    w: &[f32],
    b: Option<&[f32]>,
) -> (Array4<f64>, Array4<f64>) {
    let s = x.shape();
    let od = spec.out_dims([s[1], s[2], s[3]]);
    let [kz, ky, kx] = spec.kernel;
    let mut out = Array4::zeros((spec.out_channels, od[0], od[1], od[2]));
    let mut mag = Array4::zeros(out.raw_dim());
    for ((oc, oz, oy, ox), o) in out.indexed_iter_mut() {
        let mut acc = b.map_or(0.0, |b| b[oc] as f64);
        let mut m = acc.abs();
        for ic in 0..spec.in_channels {
            for a in 0..kz {
                for bb in 0..ky {
                    for c in 0..kx {
                        let iz = (oz * spec.stride[0] + a) as isize - spec.pad[0] as isize;
                        let iy = (oy * spec.stride[1] + bb) as isize - spec.pad[1] as isize;
                        let ix = (ox * spec.stride[2] + c) as isize - spec.pad[2] as isize;
                        if iz < 0
                            || iy < 0
                            || ix < 0
                            || iz >= s[1] as isize
                            || iy >= s[2] as isize
                            || ix >= s[3] as isize
                        {
                            continue;
                        }
                        let wv =
                            w[(((oc * spec.in_channels + ic) * kz + a) * ky + bb) * kx + c] as f64;
                        let p = wv * x[[ic, iz as usize, iy as usize, ix as usize]] as f64;
                        acc += p;
                        m += p.abs();
                    }
                }
            }
        }
        *o = acc;
        mag[[oc, oz, oy, ox]] = m;
    }
    (out, mag)
}

fn assert_close(got: &Array4<f32>, want: &Array4<f64>, mag: &Array4<f64>, rel: f64, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let mut worst = 0.0f64;
    for ((i, g), (w, m)) in got.indexed_iter().zip(want.iter().zip(mag.iter())) {
        let err = (*g as f64 - w).abs();
        let tol = rel * m + 1e-6;
        assert!(
            err <= tol,
            "{what}: at {i:?} got {g}, want {w} (error {err:e}, tolerance {tol:e})"
        );
        worst = worst.max(err / (m + 1e-12));
    }
    eprintln!("{what}: worst error / magnitude {worst:e}");
}

struct Case {
    sources: &'static [usize],
    out: usize,
    kernel: [usize; 3],
    stride: [usize; 3],
    pad: [usize; 3],
    dims: [usize; 3],
}

impl Case {
    /// The case's convolution with random weights and bias from `rng`.
    fn conv(&self, rng: &mut Lcg) -> (ConvSpec, Vec<f32>, Vec<f32>) {
        let cin: usize = self.sources.iter().sum();
        let taps: usize = self.kernel.iter().product();
        let spec = ConvSpec {
            in_channels: cin,
            out_channels: self.out,
            kernel: self.kernel,
            stride: self.stride,
            pad: self.pad,
        };
        (spec, rng.vec(self.out * cin * taps), rng.vec(self.out))
    }
}

const CASES: &[Case] = &[
    // one input channel (the image), 3x3x3, odd sizes
    Case {
        sources: &[1],
        out: 32,
        kernel: [3, 3, 3],
        stride: [1, 1, 1],
        pad: [1, 1, 1],
        dims: [5, 6, 7],
    },
    // skip concatenation of two sources, channel counts not multiples of 16
    Case {
        sources: &[20, 13],
        out: 19,
        kernel: [3, 3, 3],
        stride: [1, 1, 1],
        pad: [1, 1, 1],
        dims: [4, 5, 9],
    },
    Case {
        sources: &[16, 5, 16],
        out: 48,
        kernel: [3, 3, 3],
        stride: [1, 1, 1],
        pad: [1, 1, 1],
        dims: [3, 4, 19],
    },
    // 1x3x3 and 3x3x1 (anisotropic nnU-Net plans), groups 2 + 1 and 2 + 2
    Case {
        sources: &[17],
        out: 40,
        kernel: [1, 3, 3],
        stride: [1, 1, 1],
        pad: [0, 1, 1],
        dims: [3, 7, 13],
    },
    Case {
        sources: &[16],
        out: 64,
        kernel: [3, 3, 1],
        stride: [1, 1, 1],
        pad: [1, 1, 0],
        dims: [4, 6, 17],
    },
    // segmentation head: 1x1x1 to 3 classes
    Case {
        sources: &[32],
        out: 3,
        kernel: [1, 1, 1],
        stride: [1, 1, 1],
        pad: [0, 0, 0],
        dims: [3, 4, 29],
    },
    // convolutional pooling
    Case {
        sources: &[24],
        out: 33,
        kernel: [3, 3, 3],
        stride: [2, 2, 2],
        pad: [1, 1, 1],
        dims: [7, 8, 15],
    },
    Case {
        sources: &[8],
        out: 16,
        kernel: [1, 3, 3],
        stride: [1, 2, 2],
        pad: [0, 1, 1],
        dims: [3, 9, 10],
    },
    Case {
        sources: &[64],
        out: 80,
        kernel: [3, 3, 3],
        stride: [2, 2, 2],
        pad: [1, 1, 1],
        dims: [4, 4, 8],
    },
    // several input-channel chunks (deep layers)
    Case {
        sources: &[80, 30],
        out: 64,
        kernel: [3, 3, 3],
        stride: [1, 1, 1],
        pad: [1, 1, 1],
        dims: [3, 4, 8],
    },
    // rows long enough to be staged only at their ends (left view, inner source, right view)
    Case {
        sources: &[16, 16],
        out: 32,
        kernel: [3, 3, 3],
        stride: [1, 1, 1],
        pad: [1, 1, 1],
        dims: [3, 3, 45],
    },
    Case {
        sources: &[24],
        out: 20,
        kernel: [3, 3, 3],
        stride: [2, 2, 2],
        pad: [1, 1, 1],
        dims: [3, 4, 75],
    },
    // few output channels (the narrow path: P x Q positions per vector), P = 4, 8, 2, 1, with
    // concatenation, no padding, anisotropic kernels, rows longer than a tile and tiny volumes
    Case {
        sources: &[1],
        out: 4,
        kernel: [3, 3, 3],
        stride: [1, 1, 1],
        pad: [1, 1, 1],
        dims: [5, 6, 7],
    },
    Case {
        sources: &[4, 4, 12],
        out: 4,
        kernel: [3, 3, 3],
        stride: [1, 1, 1],
        pad: [1, 1, 1],
        dims: [4, 5, 33],
    },
    Case {
        sources: &[20, 3],
        out: 8,
        kernel: [3, 3, 3],
        stride: [1, 1, 1],
        pad: [1, 1, 1],
        dims: [3, 4, 9],
    },
    Case {
        sources: &[8],
        out: 3,
        kernel: [1, 3, 3],
        stride: [1, 1, 1],
        pad: [0, 1, 1],
        dims: [3, 7, 13],
    },
    Case {
        sources: &[16],
        out: 1,
        kernel: [3, 3, 1],
        stride: [1, 1, 1],
        pad: [1, 1, 0],
        dims: [4, 6, 17],
    },
    Case {
        sources: &[6],
        out: 2,
        kernel: [3, 3, 3],
        stride: [1, 1, 1],
        pad: [0, 0, 0],
        dims: [5, 5, 6],
    },
    Case {
        sources: &[17],
        out: 5,
        kernel: [3, 3, 3],
        stride: [1, 1, 1],
        pad: [1, 1, 1],
        dims: [2, 3, 2],
    },
    Case {
        sources: &[4],
        out: 7,
        kernel: [3, 1, 3],
        stride: [1, 1, 1],
        pad: [1, 0, 1],
        dims: [3, 5, 40],
    },
    // a stride the fast kernels do not specialise
    Case {
        sources: &[5],
        out: 7,
        kernel: [3, 3, 3],
        stride: [1, 1, 3],
        pad: [1, 1, 1],
        dims: [3, 4, 10],
    },
];

#[test]
fn conv3d_matches_reference() {
    let mut rng = Lcg(1);
    let mut winograd_layers = 0;
    for case in CASES {
        let (spec, w, b) = case.conv(&mut rng);
        let xs: Vec<Array4<f32>> = case
            .sources
            .iter()
            .map(|&c| rng.array(c, case.dims))
            .collect();
        let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
        let x_all = ndarray::concatenate(ndarray::Axis(0), &views).unwrap();
        let (want, mag) = ref_conv(&x_all, &spec, &w, Some(&b));
        let acts: Vec<Act> = xs.iter().map(|x| act_of(x.view())).collect();
        let refs: Vec<&Act> = acts.iter().collect();
        for (isa, winograd) in isas().into_iter().flat_map(|i| [(i, false), (i, true)]) {
            let conv = PackedConv::with_winograd(
                spec.clone(),
                &w,
                Some(&b),
                Precision::F32,
                isa,
                winograd,
            )
            .unwrap();
            winograd_layers += usize::from(conv.uses_winograd());
            // a reused buffer of another shape
            let mut out = Act::try_zeros(3, [1, 2, 3]).unwrap();
            let mut stats = ChannelStats::default();
            conv3d(&refs, &conv, &mut out, Some(&mut stats)).unwrap();
            assert_eq!(out.dims(), conv.out_dims(case.dims));
            let what = format!("{isa:?} winograd {} {spec:?}", conv.uses_winograd());
            assert_close(&to_array(&out), &want, &mag, 1e-5, &what);
            assert_pad_lanes_zero(&out);
            // statistics against the reference output
            let voxels: usize = out.dims().iter().product();
            assert_eq!(stats.count, voxels);
            for c in 0..case.out {
                let ch = want.index_axis(ndarray::Axis(0), c);
                let s: f64 = ch.sum();
                let q: f64 = ch.iter().map(|v| v * v).sum();
                let m: f64 = mag.index_axis(ndarray::Axis(0), c).sum();
                let m2: f64 = mag
                    .index_axis(ndarray::Axis(0), c)
                    .iter()
                    .map(|v| v * v)
                    .sum();
                assert!(
                    (stats.sum[c] - s).abs() <= 1e-5 * m + 1e-6,
                    "{what}: sum of channel {c}"
                );
                assert!(
                    (stats.sumsq[c] - q).abs() <= 2e-5 * m2 + 1e-6,
                    "{what}: sumsq of channel {c}"
                );
            }
        }
    }
    // the four 3x3x3 stride-1 padding-1 cases of at least 16 input and output channels, on every ISA
    assert_eq!(winograd_layers, 4 * isas().len());
}

#[test]
fn conv3d_without_bias_and_stats() {
    let mut rng = Lcg(2);
    let spec = ConvSpec {
        in_channels: 3,
        out_channels: 5,
        kernel: [3, 3, 3],
        stride: [1, 1, 1],
        pad: [1, 1, 1],
    };
    let w = rng.vec(5 * 3 * 27);
    let x = rng.array(3, [2, 3, 4]);
    let (want, mag) = ref_conv(&x, &spec, &w, None);
    for isa in isas() {
        let conv = PackedConv::new(spec.clone(), &w, None, Precision::F32, isa).unwrap();
        let mut out = Act::try_zeros(5, [2, 3, 4]).unwrap();
        conv3d(&[&act_of(x.view())], &conv, &mut out, None).unwrap();
        assert_close(&to_array(&out), &want, &mag, 1e-5, "no bias");
    }
}

#[test]
fn conv3d_rejects_bad_shapes() {
    let spec = ConvSpec {
        in_channels: 4,
        out_channels: 2,
        kernel: [3, 3, 3],
        stride: [1, 1, 1],
        pad: [1, 1, 1],
    };
    assert!(PackedConv::new(
        spec.clone(),
        &[0.0; 10],
        None,
        Precision::F32,
        Isa::Portable
    )
    .is_err());
    assert!(PackedConv::new(
        spec.clone(),
        &[0.0; 216],
        Some(&[0.0; 3]),
        Precision::F32,
        Isa::Portable
    )
    .is_err());
    let conv = PackedConv::new(spec, &[0.0; 216], None, Precision::F32, Isa::Portable).unwrap();
    let a = Act::try_zeros(3, [2, 2, 2]).unwrap();
    let b = Act::try_zeros(1, [2, 2, 3]).unwrap();
    let mut out = Act::try_zeros(2, [2, 2, 2]).unwrap();
    assert!(
        conv3d(&[&a], &conv, &mut out, None).is_err(),
        "3 of 4 channels"
    );
    assert!(
        conv3d(&[&a, &b], &conv, &mut out, None).is_err(),
        "shapes differ"
    );
    if !bf16_supported() {
        let spec = ConvSpec {
            in_channels: 1,
            out_channels: 1,
            kernel: [1, 1, 1],
            stride: [1, 1, 1],
            pad: [0, 0, 0],
        };
        let err = PackedConv::new(spec, &[1.0], None, Precision::Bf16, detect_isa())
            .err()
            .unwrap();
        assert!(err.to_string().contains("AVX512_BF16"), "{err}");
    }
}

/// Reference transposed convolution (stride = kernel, weights `(in, out, taps)`): (value, sum of
/// |terms|) per output element.
fn ref_conv_transpose(
    x: &Array4<f32>,
    cout: usize,
    kernel: [usize; 3],
    w: &[f32],
    b: &[f32],
) -> (Array4<f64>, Array4<f64>) {
    let s = x.shape();
    let (cin, taps) = (s[0], kernel.iter().product::<usize>());
    let mut want =
        Array4::<f64>::zeros((cout, s[1] * kernel[0], s[2] * kernel[1], s[3] * kernel[2]));
    let mut mag = Array4::<f64>::zeros(want.raw_dim());
    for ((oc, oz, oy, ox), o) in want.indexed_iter_mut() {
        let (iz, iy, ix) = (oz / kernel[0], oy / kernel[1], ox / kernel[2]);
        let t = ((oz % kernel[0]) * kernel[1] + oy % kernel[1]) * kernel[2] + ox % kernel[2];
        let mut acc = b[oc] as f64;
        let mut m = acc.abs();
        for ic in 0..cin {
            let p = w[(ic * cout + oc) * taps + t] as f64 * x[[ic, iz, iy, ix]] as f64;
            acc += p;
            m += p.abs();
        }
        *o = acc;
        mag[[oc, oz, oy, ox]] = m;
    }
    (want, mag)
}

#[test]
fn conv_transpose3d_matches_reference() {
    let mut rng = Lcg(3);
    for (cin, cout, kernel, dims) in [
        (33usize, 17usize, [2usize, 2, 2], [3usize, 4, 5]),
        (64, 32, [1, 2, 2], [2, 3, 7]),
        (20, 3, [2, 2, 2], [1, 2, 3]),
    ] {
        let taps: usize = kernel.iter().product();
        let w = rng.vec(cin * cout * taps);
        let b = rng.vec(cout);
        let x = rng.array(cin, dims);
        let (want, mag) = ref_conv_transpose(&x, cout, kernel, &w, &b);
        let od = [want.shape()[1], want.shape()[2], want.shape()[3]];
        for isa in isas() {
            let conv = PackedConvTranspose::new(cin, cout, kernel, &w, Some(&b), isa).unwrap();
            assert_eq!(conv.out_dims(dims), od);
            let mut out = Act::try_zeros(1, [1, 1, 1]).unwrap();
            conv_transpose3d(&act_of(x.view()), &conv, &mut out).unwrap();
            assert_close(
                &to_array(&out),
                &want,
                &mag,
                1e-5,
                &format!("{isa:?} convT {cin}->{cout} {kernel:?}"),
            );
            assert_pad_lanes_zero(&out);
        }
    }
}

fn ref_act(v: f64, act: Activation) -> f64 {
    match act {
        Activation::None => v,
        Activation::Relu => v.max(0.0),
        Activation::LeakyRelu(s) => {
            if v >= 0.0 {
                v
            } else {
                v * s as f64
            }
        }
    }
}

#[test]
fn norm_act_matches_reference() {
    let mut rng = Lcg(4);
    let (c, dims) = (19usize, [3usize, 5, 7]);
    // an offset mean, as after a convolution with bias
    let x = rng.array(c, dims).mapv(|v| 3.0 * v + 0.5);
    let gamma = rng.vec(c);
    let beta = rng.vec(c);
    for act in [
        Activation::LeakyRelu(0.01),
        Activation::Relu,
        Activation::None,
    ] {
        let mut t = act_of(x.view());
        let mut stats = ChannelStats {
            sum: vec![0.0; c],
            sumsq: vec![0.0; c],
            count: dims.iter().product(),
        };
        for ((ch, _, _, _), v) in x.indexed_iter() {
            stats.sum[ch] += *v as f64;
            stats.sumsq[ch] += (*v as f64) * (*v as f64);
        }
        norm_act(&mut t, &stats, &gamma, &beta, 1e-5, act);
        let got = to_array(&t);
        assert_pad_lanes_zero(&t);
        for ch in 0..c {
            let xc = x.index_axis(ndarray::Axis(0), ch);
            let n = xc.len() as f64;
            let mean = xc.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = xc.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
            for (g, v) in got.index_axis(ndarray::Axis(0), ch).iter().zip(xc.iter()) {
                let want = ref_act(
                    (*v as f64 - mean) / (var + 1e-5).sqrt() * gamma[ch] as f64 + beta[ch] as f64,
                    act,
                );
                assert!(
                    (*g as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "{act:?} channel {ch}: {g} vs {want}"
                );
            }
        }
    }
}

#[test]
fn activate_and_add_assign_match_reference() {
    let mut rng = Lcg(5);
    let x = rng.array(21, [2, 3, 5]);
    let y = rng.array(21, [2, 3, 5]);
    for act in [Activation::LeakyRelu(0.01), Activation::Relu] {
        let mut t = act_of(x.view());
        activate(&mut t, act);
        let got = to_array(&t);
        for (g, v) in got.iter().zip(x.iter()) {
            assert_eq!(*g as f64, ref_act(*v as f64, act) as f32 as f64);
        }
    }
    let mut t = act_of(x.view());
    add_assign(&mut t, &act_of(y.view()));
    let got = to_array(&t);
    for ((g, a), b) in got.iter().zip(x.iter()).zip(y.iter()) {
        assert_eq!(*g, a + b);
    }
    assert_pad_lanes_zero(&t);
}

#[test]
fn load_store_any_strides() {
    let mut rng = Lcg(6);
    let x = rng.array(5, [3, 4, 6]);
    // a permuted, non-contiguous view of the same values
    let xt = x.view().permuted_axes([0, 3, 2, 1]).to_owned();
    let back = xt.view().permuted_axes([0, 3, 2, 1]);
    let a = act_of(back);
    assert_eq!(to_array(&a), x);
    assert_pad_lanes_zero(&a);
    let mut out = Array4::<f32>::zeros((5, 6, 4, 3));
    a.store_cdhw(out.view_mut().permuted_axes([0, 3, 2, 1]));
    assert_eq!(out.permuted_axes([0, 3, 2, 1]), x);
}

#[test]
fn act_reshape_reuses_allocation() {
    let mut a = Act::try_zeros(32, [4, 4, 4]).unwrap();
    let cap = a.capacity();
    a.reshape(17, [2, 4, 4]).unwrap();
    assert_eq!(a.capacity(), cap);
    assert_eq!((a.channels(), a.dims(), a.blocks()), (17, [2, 4, 4], 2));
    a.reshape(64, [4, 4, 4]).unwrap();
    assert!(a.capacity() >= 64 * 64);
    assert!(matches!(
        Act::try_zeros(usize::MAX / 2, [1 << 20, 1 << 20, 1]),
        Err(EngineError::OutOfMemory { .. })
    ));
}

/// bf16 against the f64 reference. Bound (stated for bf16, not the f32 tolerance): both factors are
/// rounded to bf16 (unit roundoff 2^-8), so each product is off by at most about 2 * 2^-8 = 7.8e-3 of its
/// magnitude; with f32 accumulation each output is within `8e-3 * sum of |products| + 1e-6`. The test also
/// prints the typical error relative to the output's spread.
#[test]
fn conv3d_bf16_within_bf16_bound() {
    if !bf16_supported() {
        // the only thing to check on such a CPU: bf16 is refused with a clear message
        let spec = ConvSpec {
            in_channels: 1,
            out_channels: 1,
            kernel: [1, 1, 1],
            stride: [1, 1, 1],
            pad: [0, 0, 0],
        };
        let err = PackedConv::new(spec, &[1.0], None, Precision::Bf16, detect_isa())
            .err()
            .unwrap();
        assert!(err.to_string().contains("AVX512_BF16"), "{err}");
        return;
    }
    let mut rng = Lcg(7);
    for case in CASES {
        let (spec, w, b) = case.conv(&mut rng);
        let xs: Vec<Array4<f32>> = case
            .sources
            .iter()
            .map(|&c| rng.array(c, case.dims))
            .collect();
        let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
        let x_all = ndarray::concatenate(ndarray::Axis(0), &views).unwrap();
        let (want, mag) = ref_conv(&x_all, &spec, &w, Some(&b));
        let acts: Vec<Act> = xs.iter().map(|x| act_of(x.view())).collect();
        let refs: Vec<&Act> = acts.iter().collect();
        for isa in [Isa::Avx512, Isa::Amx]
            .into_iter()
            .filter(|i| i.supported())
        {
            let conv = PackedConv::new(spec.clone(), &w, Some(&b), Precision::Bf16, isa).unwrap();
            let mut out = Act::try_zeros(1, [1, 1, 1]).unwrap();
            let mut stats = ChannelStats::default();
            let res = conv3d(&refs, &conv, &mut out, Some(&mut stats));
            if isa == Isa::Avx512
                && case.sources[..case.sources.len() - 1]
                    .iter()
                    .any(|c| c % 2 == 1)
            {
                // the AVX512_BF16 path pairs channels; AMX converts any split
                assert!(
                    res.is_err(),
                    "odd channel split must be refused in AVX512_BF16"
                );
                continue;
            }
            res.unwrap();
            let got = to_array(&out);
            assert_close(&got, &want, &mag, 8e-3, &format!("bf16 {isa:?} {spec:?}"));
            assert_pad_lanes_zero(&out);
            assert_stats_match(&out, &stats, &format!("bf16 {isa:?} {spec:?}"));
            let n = want.len() as f64;
            let mean = want.sum() / n;
            let sd = (want.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
            let rms = (got
                .iter()
                .zip(want.iter())
                .map(|(g, w)| (*g as f64 - w).powi(2))
                .sum::<f64>()
                / n)
                .sqrt();
            eprintln!(
                "bf16 {isa:?} {spec:?}: rms error / output sd = {:.2e}",
                rms / sd
            );
        }
    }
}

/// The statistics a convolution gathered equal the sums of what it wrote (row sums are f32, totals f64).
fn assert_stats_match(out: &Act, stats: &ChannelStats, what: &str) {
    let got = to_array(out);
    assert_eq!(stats.count, out.dims().iter().product::<usize>(), "{what}");
    for c in 0..out.channels() {
        let ch = got.index_axis(ndarray::Axis(0), c);
        let s: f64 = ch.iter().map(|v| *v as f64).sum();
        let a: f64 = ch.iter().map(|v| v.abs() as f64).sum();
        let q: f64 = ch.iter().map(|v| (*v as f64) * (*v as f64)).sum();
        assert!(
            (stats.sum[c] - s).abs() <= 1e-5 * a + 1e-6,
            "{what}: sum of channel {c}: {} vs {s}",
            stats.sum[c]
        );
        assert!(
            (stats.sumsq[c] - q).abs() <= 1e-5 * q + 1e-6,
            "{what}: sumsq of channel {c}: {} vs {q}",
            stats.sumsq[c]
        );
    }
}

/// Raw sources and their InstanceNorm + activation: the deferred `Act`s ([`defer_norm_act`]) and the
/// materialised values ([`norm_act`] on a copy), for every even-indexed source (odd ones stay plain).
fn deferred_sources(rng: &mut Lcg, sources: &[usize], dims: [usize; 3]) -> (Vec<Act>, Array4<f32>) {
    let acts_and_values: Vec<(Act, Array4<f32>)> = sources
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            // an offset, spread-out raw output, as a convolution with bias writes it
            let x = rng.array(c, dims).mapv(|v| 2.5 * v + 0.3);
            let mut raw = act_of(x.view());
            if i % 2 == 1 {
                return (raw, x);
            }
            let mut stats = ChannelStats {
                sum: vec![0.0; c],
                sumsq: vec![0.0; c],
                count: dims.iter().product(),
            };
            for ((ch, _, _, _), v) in x.indexed_iter() {
                stats.sum[ch] += *v as f64;
                stats.sumsq[ch] += (*v as f64) * (*v as f64);
            }
            let gamma = rng.vec(c);
            let beta = rng.vec(c);
            let act = [
                Activation::LeakyRelu(0.01),
                Activation::Relu,
                Activation::None,
            ][(i / 2) % 3];
            let mut done = act_of(x.view());
            norm_act(&mut done, &stats, &gamma, &beta, 1e-5, act);
            defer_norm_act(&mut raw, &stats, &gamma, &beta, 1e-5, act);
            assert!(raw.is_deferred());
            (raw, to_array(&done))
        })
        .collect();
    let views: Vec<_> = acts_and_values.iter().map(|(_, v)| v.view()).collect();
    let values = ndarray::concatenate(ndarray::Axis(0), &views).unwrap();
    (
        acts_and_values.into_iter().map(|(a, _)| a).collect(),
        values,
    )
}

/// A deferred input is read as its normalised values by every convolution that says it reads them
/// (narrow path, AMX and AVX512_BF16 conversions), with the tolerance of the plain input (f32 1e-5, bf16
/// 8e-3 of the terms' magnitude, as above); the f32 blocked kernel refuses it instead of reading raw
/// values. A materialised copy equals `norm_act`'s values exactly.
#[test]
fn conv3d_reads_deferred_inputs() {
    let mut rng = Lcg(8);
    for case in CASES {
        let (spec, w, b) = case.conv(&mut rng);
        let (acts, values) = deferred_sources(&mut rng, case.sources, case.dims);
        let refs: Vec<&Act> = acts.iter().collect();
        let (want, mag) = ref_conv(&values, &spec, &w, Some(&b));
        let mut variants: Vec<(Precision, Isa)> =
            isas().into_iter().map(|i| (Precision::F32, i)).collect();
        if bf16_supported() {
            variants.extend(
                [Isa::Avx512, Isa::Amx]
                    .into_iter()
                    .filter(|i| i.supported())
                    .map(|i| (Precision::Bf16, i)),
            );
        }
        for (precision, isa) in variants {
            let conv = PackedConv::new(spec.clone(), &w, Some(&b), precision, isa).unwrap();
            let mut out = Act::try_zeros(1, [1, 1, 1]).unwrap();
            let mut stats = ChannelStats::default();
            let res = conv3d(&refs, &conv, &mut out, Some(&mut stats));
            let what = format!("deferred {precision:?} {isa:?} {spec:?}");
            if !conv.reads_deferred() {
                if acts.iter().any(|a| a.is_deferred()) {
                    let err = res.err().unwrap_or_else(|| panic!("{what}: must refuse"));
                    assert!(err.to_string().contains("materialise"), "{err}");
                }
                continue;
            }
            if conv.precision() == Precision::Bf16
                && isa == Isa::Avx512
                && case.sources[..case.sources.len() - 1]
                    .iter()
                    .any(|c| c % 2 == 1)
            {
                assert!(res.is_err(), "{what}: odd channel split");
                continue;
            }
            res.unwrap();
            let rel = if conv.precision() == Precision::Bf16 {
                8e-3
            } else {
                1e-5
            };
            assert_close(&to_array(&out), &want, &mag, rel, &what);
            assert_pad_lanes_zero(&out);
            assert_stats_match(&out, &stats, &what);
        }
    }
    // materialising gives norm_act's values, bit for bit, and clears the deferral
    let (mut acts, values) = deferred_sources(&mut rng, &[19], [3, 4, 5]);
    materialize(&mut acts[0]);
    assert!(!acts[0].is_deferred());
    assert_eq!(to_array(&acts[0]), values);
    assert_pad_lanes_zero(&acts[0]);
}

/// The transposed convolution normalises a deferred input as it stages its rows.
#[test]
fn conv_transpose3d_reads_deferred_input() {
    let mut rng = Lcg(9);
    for (cin, cout, kernel, dims) in [
        (33usize, 17usize, [2usize, 2, 2], [3usize, 4, 5]),
        (64, 32, [1, 2, 2], [2, 3, 7]),
    ] {
        let taps: usize = kernel.iter().product();
        let w = rng.vec(cin * cout * taps);
        let b = rng.vec(cout);
        let (acts, x) = deferred_sources(&mut rng, &[cin], dims);
        let (want, mag) = ref_conv_transpose(&x, cout, kernel, &w, &b);
        for isa in isas() {
            let conv = PackedConvTranspose::new(cin, cout, kernel, &w, Some(&b), isa).unwrap();
            let mut out = Act::try_zeros(1, [1, 1, 1]).unwrap();
            conv_transpose3d(&acts[0], &conv, &mut out).unwrap();
            assert!(!out.is_deferred());
            let what = format!("deferred {isa:?} convT {cin}->{cout} {kernel:?}");
            assert_close(&to_array(&out), &want, &mag, 1e-5, &what);
            assert_pad_lanes_zero(&out);
        }
    }
}
