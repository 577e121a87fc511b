//! nnunetv2 prediction against nnunetv2 2.8.1 (fixtures/v2/predict, made by scripts/goldens/v2_make.py):
//!
//! - logits: `predict_logits_v2` (the native backend and tract, every fold of the golden, step 0.5, Gaussian, the checkpoint's
//!   mirroring axes) on our own preprocessing of the phantom, against
//!   `nnUNetPredictor.predict_logits_from_preprocessed_data` with fp32 accumulators: max abs <= 1e-4;
//! - segmentations: `predict_case_v2` (the whole path: read, preprocess, predict, export, write) against
//!   `predict_from_files` as users run it (fp16 accumulators), voxel for voxel, except near-ties;
//! - `--save-probabilities`: the same run's `CASE.npz` against nnunetv2's (same array name, dtype, shape;
//!   values within the bound below) and `CASE.pkl` against nnunetv2's (the same keys and values).
//!
//! A voxel is a near-tie when fp16 accumulation could decide it: nnunetv2's fp16 accumulators moved the
//! logits by at most `delta = fp16_vs_fp32_logits_max_abs` (the golden's meta.json), and it resamples
//! them in fp16 (relative rounding 2^-11 per value). The label can then only differ where the two
//! largest resampled logits are within `2 * delta + (|a| + |b|) * 2^-10` (softmax), or a region's logit
//! within `delta + |l| * 2^-10` of 0 (sigmoid > 0.5).
//!
//! Probabilities: nnunetv2's are the softmax (or sigmoid) in fp32 of its logits after resampling and
//! rounding to fp16. Its merged logits are within `delta` of the fp32 path's, ours within `TOL` of that;
//! the resampling of probabilities is linear (`order` 1, `order_z` 0 in these plans: convex combinations,
//! which do not grow a difference); the fp16 rounding of the resampled logits adds at most
//! `|l| * 2^-11 <= L * 2^-11` (`L` the largest resampled logit magnitude). So each logit differs by at most
//! `eps = delta + TOL + L * 2^-11`. Along the segment between two logit vectors the derivative of a
//! softmax output is `p_i * sum_j p_j (dl_i - dl_j)`, at most `p_i (1 - p_i) * 2 eps <= eps / 2`, and a
//! sigmoid's at most `eps / 4`: the probabilities differ by at most `eps / 2`. Outside the crop box both
//! are exact (1 for background, 0 otherwise; 0 for regions). The 2-D golden (`Dataset901_Plain_2d`) is predicted slice by slice as nnunetv2
//! predicts a 2-D configuration, with the same tolerances.

mod common;

use common::npz_probabilities;
use std::path::{Path, PathBuf};

use ndarray::{Array3, Axis};
use nnu_pipeline::cases::Case;
use nnu_pipeline::run::{BackendKind, CpuBackendOptions};
use nnu_pipeline::stages::PredictOptions;
use nnu_pipeline::v2::{
    load_v2_backends, predict_case_v2, predict_logits_v2, v2_preprocess_files, V2Model,
};
use nnu_preprocessing::v2::{resample_logits_v2, V2Labels};

const TOL: f32 = 1e-4;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/v2")
}

fn read_npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let a = nnu_pipeline::npy::read_npy_f32(path).unwrap_or_else(|e| panic!("{e}"));
    (a.shape().to_vec(), a.into_iter().collect())
}

struct Golden {
    name: String,
    meta: serde_json::Value,
    model: V2Model,
    files: Vec<PathBuf>,
}

/// Every golden: three 3-D configurations and a 2-D one.
fn goldens() -> Vec<Golden> {
    let dir = root().join("predict");
    let mut out = Vec::new();
    let mut metas: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().join("meta.json"))
        .filter(|p| p.is_file())
        .collect();
    metas.sort();
    assert_eq!(metas.len(), 4, "golden count");
    for m in metas {
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
        let configuration = meta["configuration"].as_str().unwrap();
        let model = V2Model::open(
            &root().join(meta["model"].as_str().unwrap()),
            Some(configuration),
            "checkpoint_final.pth",
        )
        .unwrap();
        let case = meta["case"].as_str().unwrap().to_owned();
        let files = (0..model.num_channels)
            .map(|c| root().join(format!("cases/{case}_{c:04}.nii.gz")))
            .collect();
        let name = m
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        out.push(Golden {
            name,
            meta,
            model,
            files,
        });
    }
    assert_eq!(out.len(), 4);
    out
}

fn folds(meta: &serde_json::Value) -> Vec<usize> {
    serde_json::from_value(meta["folds"].clone()).unwrap()
}

#[test]
fn logits_match_predict_sliding_window() {
    for kind in [BackendKind::Native, BackendKind::Tract] {
        logits_match(kind);
    }
}

fn logits_match(kind: BackendKind) {
    let opts_cpu = CpuBackendOptions::new(kind, 2);
    for g in goldens() {
        let mut b = load_v2_backends(&g.model, &folds(&g.meta), &opts_cpu).unwrap();
        let mut want_axes: Vec<usize> =
            serde_json::from_value(g.meta["mirror_axes"].clone()).unwrap();
        if g.meta["configuration"] == "2d" {
            // The checkpoint's axes are the 2-D network's (y, x) = axes 1, 2 of the (z, y, x) array.
            want_axes.iter_mut().for_each(|a| *a += 1);
        }
        assert_eq!(b.mirror_axes.as_deref(), Some(&want_axes[..]), "{}", g.name);
        let opts = PredictOptions {
            mirrors: b.default_mirrors().unwrap(),
            ..PredictOptions::default()
        };
        let (data, _, _) = v2_preprocess_files(&g.files, &g.model.params).unwrap();
        let (logits, tiles) = predict_logits_v2(
            &data,
            &mut b.backends,
            g.model.window,
            &opts,
            &mut |_, _| {},
        )
        .unwrap();
        let (shape, want) = read_npy_f32(&root().join(format!("predict/{}_logits.npy", g.name)));
        assert_eq!(logits.shape(), shape.as_slice(), "{}", g.name);
        let max = logits
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!(
            "{} ({kind:?}): {} tiles x {} mirrors x {} fold(s), logits max abs diff {max:.3e}",
            g.name,
            tiles,
            opts.mirrors.len(),
            b.backends.len()
        );
        assert!(
            max <= TOL,
            "{} ({kind:?}): logits max abs diff {max}",
            g.name
        );
    }
}

#[test]
fn segmentations_match_predict_from_files_except_near_ties() {
    let opts_cpu = CpuBackendOptions::new(BackendKind::Tract, 2);
    let tmp = tempfile::tempdir().unwrap();
    for g in goldens() {
        let mut b = load_v2_backends(&g.model, &folds(&g.meta), &opts_cpu).unwrap();
        let opts = PredictOptions {
            mirrors: b.default_mirrors().unwrap(),
            ..PredictOptions::default()
        };
        let case_name = g.meta["case"].as_str().unwrap();
        let case = Case::nifti(case_name.to_owned(), g.files.clone());
        let out = tmp.path().join(&g.name);
        let opts_saving = PredictOptions {
            save_probabilities: true,
            ..opts.clone()
        };
        let report = predict_case_v2(
            &case,
            &g.model,
            &mut b.backends,
            &out,
            &opts_saving,
            &mut |_, _| {},
        )
        .unwrap();
        let ours = nnu_volume::read_labels(&report.output).unwrap();
        let theirs =
            nnu_volume::read_labels(&root().join(format!("predict/{}/{case_name}.nii.gz", g.name)))
                .unwrap();
        assert_eq!(ours.data.shape(), theirs.data.shape(), "{}", g.name);
        for a in 0..3 {
            assert!(
                (ours.geometry.spacing[a] - theirs.geometry.spacing[a]).abs() < 1e-5
                    && (ours.geometry.origin[a] - theirs.geometry.origin[a]).abs() < 1e-4,
                "{}: geometry",
                g.name
            );
        }
        // Near-ties, from our logits resampled as the export does, mapped to the image frame.
        let (data, props, _) = v2_preprocess_files(&g.files, &g.model.params).unwrap();
        let (logits, _) = predict_logits_v2(
            &data,
            &mut b.backends,
            g.model.window,
            &opts,
            &mut |_, _| {},
        )
        .unwrap();
        let r = resample_logits_v2(logits.view(), &props, &g.model.export).unwrap();
        let delta = g.meta["fp16_vs_fp32_logits_max_abs"].as_f64().unwrap() as f32;
        let ulp = 2f32.powi(-10);
        let tie_cropped =
            ndarray::Zip::from(r.lanes(Axis(0))).map_collect(|l| match &g.model.export.labels {
                V2Labels::Softmax => {
                    let mut v: Vec<f32> = l.to_vec();
                    v.sort_by(|a, b| b.total_cmp(a));
                    v[0] - v[1] <= 2.0 * delta + (v[0].abs() + v[1].abs()) * ulp
                }
                V2Labels::Regions { .. } => l.iter().any(|&x| x.abs() <= delta + x.abs() * ulp),
            });
        let bbox = props.bbox_used_for_cropping;
        let mut tie = Array3::<bool>::from_elem(props.shape_before_cropping, false);
        tie.slice_mut(ndarray::s![
            bbox[0][0]..bbox[0][1],
            bbox[1][0]..bbox[1][1],
            bbox[2][0]..bbox[2][1]
        ])
        .assign(&tie_cropped);
        let tie = tie.permuted_axes(g.model.export.transpose_backward);
        assert_eq!(tie.shape(), ours.data.shape());
        let (mut differ, mut ties, mut differ_not_tie) = (0usize, 0usize, 0usize);
        ndarray::Zip::from(&ours.data)
            .and(&theirs.data)
            .and(&tie)
            .for_each(|&a, &b, &t| {
                ties += t as usize;
                if a != b {
                    differ += 1;
                    differ_not_tie += (!t) as usize;
                }
            });
        let foreground = theirs.data.iter().filter(|&&v| v != 0).count();
        eprintln!(
            "{}: {} voxels ({foreground} foreground in nnunetv2's), {ties} near-ties, {differ} differ, \
             {differ_not_tie} of them not near-ties",
            g.name,
            ours.data.len()
        );
        assert!(
            foreground > 0,
            "{}: the golden segmentation is empty",
            g.name
        );
        assert_eq!(differ_not_tie, 0, "{}", g.name);

        // --save-probabilities: CASE.npz and CASE.pkl beside the segmentation.
        let golden = root().join(format!("predict/{}", g.name));
        let (want_shape, want) = npz_probabilities(&golden.join(format!("{case_name}.npz")));
        let (shape, got) = npz_probabilities(&out.join(format!("{case_name}.npz")));
        assert_eq!(shape, want_shape, "{}", g.name);
        let l_max = r.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
        let eps = delta + TOL + l_max * 2f32.powi(-11);
        let bound = match g.model.export.labels {
            V2Labels::Softmax => eps / 2.0,
            V2Labels::Regions { .. } => eps / 4.0,
        };
        let max = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!(
            "{}: probabilities {shape:?}, max abs diff {max:.3e} (bound {bound:.3e}: delta {delta:.3e}, \
             largest logit {l_max:.2})",
            g.name
        );
        assert!(max <= bound, "{}: probabilities differ by {max}", g.name);
        let ours = pickle_repr(&out.join(format!("{case_name}.pkl")));
        let theirs = pickle_repr(&golden.join(format!("{case_name}.pkl")));
        assert_eq!(ours, theirs, "{}: properties", g.name);
    }
}

/// A pickled value as text, numbers as f64 compared as Python compares them (nnunetv2's numpy float64
/// scalars and our floats alike; -0.0 == 0.0).
fn pickle_repr(path: &Path) -> String {
    use nnu_artifacts::pickle::Value;
    fn go(v: &Value, out: &mut String) {
        if let Some(x) = v.as_f64() {
            out.push_str(&format!("{:?} ", x + 0.0));
            return;
        }
        match v {
            Value::Dict(d) => {
                out.push('{');
                for (k, v) in d.entries.iter() {
                    out.push_str(&format!("{}: ", k.as_str().unwrap()));
                    go(v, out);
                }
                out.push('}');
            }
            Value::List(l) => {
                out.push('[');
                l.iter().for_each(|v| go(v, out));
                out.push(']');
            }
            Value::Tuple(t) => {
                out.push('(');
                t.iter().for_each(|v| go(v, out));
                out.push(')');
            }
            other => panic!("unexpected {}", other.type_name()),
        }
    }
    let v = nnu_artifacts::pickle::from_path(path).unwrap();
    let mut s = String::new();
    go(&v, &mut s);
    s
}

#[test]
/// Our `CASE.pkl` writer on its own: keys in nnunetv2's order, tuples and lists where nnunetv2 has them,
/// an int beyond 32 bits (LONG1).
fn the_properties_pickle_reads_back() {
    let props = nnu_preprocessing::v2::V2CaseProperties {
        spacing: [2.5, 1.3, 0.7],
        shape_before_cropping: [14, 26, 30],
        bbox_used_for_cropping: [[1, 13], [4, 22], [3, 5_000_000_000]],
        shape_after_cropping_and_before_resampling: [12, 18, 24],
        target_spacing: [1.0; 3],
        shape_after_resampling: [1; 3],
    };
    let bytes = nnu_pipeline::v2_out::properties_pickle(&props, &nnu_volume::Geometry::default());
    let v = nnu_artifacts::pickle::from_slice(&bytes).unwrap();
    let d = v.as_dict().unwrap();
    let keys: Vec<&str> = d.entries.iter().map(|(k, _)| k.as_str().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "sitk_stuff",
            "spacing",
            "shape_before_cropping",
            "bbox_used_for_cropping",
            "shape_after_cropping_and_before_resampling"
        ]
    );
    let floats = |v: &nnu_artifacts::pickle::Value| -> Vec<f64> {
        v.as_seq()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    assert_eq!(floats(d.get_str("spacing").unwrap()), [2.5, 1.3, 0.7]);
    let bbox = d
        .get_str("bbox_used_for_cropping")
        .unwrap()
        .as_seq()
        .unwrap();
    assert_eq!(bbox[2].as_seq().unwrap()[1].as_i64(), Some(5_000_000_000));
    let shape = d.get_str("shape_before_cropping").unwrap();
    assert!(matches!(shape, nnu_artifacts::pickle::Value::Tuple(_)));
    let sitk = d.get_str("sitk_stuff").unwrap().as_dict().unwrap();
    assert_eq!(
        floats(sitk.get_str("direction").unwrap()),
        nnu_volume::Geometry::default().direction
    );
}

/// The preview legend's names come from `dataset.json`: labels at their values, regions at the label
/// `regions_class_order` writes them as.
#[test]
fn label_names_follow_dataset_json() {
    let open = |dir: &str| {
        V2Model::open(
            &root().join("models").join(dir),
            None,
            "checkpoint_final.pth",
        )
        .unwrap()
    };
    let plain = open("Dataset901_Plain/nnUNetTrainer__nnUNetPlans__3d_fullres");
    assert_eq!(plain.label_names(), ["liver", "tumour"]);
    let regions = open("Dataset903_Regions/nnUNetTrainer__nnUNetPlans__3d_fullres");
    assert_eq!(regions.label_names(), ["whole", "core"]);
}

/// The members of fixtures/v2/ensemble (scripts/goldens/v2_ensemble_make.py): one fold of one
/// configuration each, predicted by `nnUNetv2_predict_from_modelfolder --save_probabilities`.
const ENSEMBLE_MEMBERS: [&str; 3] = ["2d_f0", "3d_fullres_f0", "3d_fullres_f1"];
/// The ensembles `nnUNetv2_ensemble` made of them.
const ENSEMBLES: [(&str, [&str; 2]); 2] = [
    ("folds", ["3d_fullres_f0", "3d_fullres_f1"]),
    ("configurations", ["3d_fullres_f0", "2d_f0"]),
];

/// `--save-probabilities` against `nnUNetv2_predict --save_probabilities` for single folds of two
/// configurations, and their ensembles:
///
/// - each member's `CASE.npz` holds one array `probabilities` (f32, nnunetv2's shape) within the bound of
///   `segmentations_match_predict_from_files_except_near_ties` (`eps / 2`, from the member's own fp16
///   delta), and its `CASE.pkl` the same properties;
/// - the average of our members' probabilities, argmax over the heads (what `nnUNetv2_ensemble` computes),
///   gives the labels of `nnUNetv2_ensemble` on nnunetv2's own files except near-ties: our averaged
///   probabilities differ from theirs by at most `B` = the mean of the members' bounds, so the argmax can
///   only differ where nnunetv2's two largest averaged probabilities are within `2 B`;
/// - it gives exactly the labels `nnUNetv2_ensemble` wrote when the script ran it on our files (native
///   backend, as `nnu-predict` runs by default), which shows that nnunetv2 reads our `.npz`/`.pkl`.
#[test]
fn save_probabilities_ensemble_as_nnunetv2s() {
    let ens = root().join("ensemble");
    let opts_cpu = CpuBackendOptions::new(BackendKind::Native, 2);
    let tmp = tempfile::tempdir().unwrap();
    // member -> (our probabilities, theirs, shape, bound)
    let mut members = std::collections::BTreeMap::new();
    for member in ENSEMBLE_MEMBERS {
        let golden = ens.join("theirs").join(member);
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(golden.join("meta.json")).unwrap()).unwrap();
        let model = V2Model::open(
            &root().join(meta["model"].as_str().unwrap()),
            Some(meta["configuration"].as_str().unwrap()),
            "checkpoint_final.pth",
        )
        .unwrap();
        let fold = meta["fold"].as_u64().unwrap() as usize;
        let case_name = meta["case"].as_str().unwrap();
        let files = vec![root().join(format!("cases/{case_name}_0000.nii.gz"))];
        let mut b = load_v2_backends(&model, &[fold], &opts_cpu).unwrap();
        let opts = PredictOptions {
            mirrors: b.default_mirrors().unwrap(),
            save_probabilities: true,
            ..PredictOptions::default()
        };
        let out = tmp.path().join(member);
        let case = Case::nifti(case_name.to_owned(), files.clone());
        predict_case_v2(&case, &model, &mut b.backends, &out, &opts, &mut |_, _| {}).unwrap();

        let (data, props, _) = v2_preprocess_files(&files, &model.params).unwrap();
        let (logits, _) =
            predict_logits_v2(&data, &mut b.backends, model.window, &opts, &mut |_, _| {}).unwrap();
        let r = resample_logits_v2(logits.view(), &props, &model.export).unwrap();
        let delta = meta["fp16_vs_fp32_logits_max_abs"].as_f64().unwrap() as f32;
        let l_max = r.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
        assert_eq!(model.export.labels, V2Labels::Softmax);
        let bound = (delta + TOL + l_max * 2f32.powi(-11)) / 2.0;

        let (want_shape, want) = npz_probabilities(&golden.join(format!("{case_name}.npz")));
        let (shape, got) = npz_probabilities(&out.join(format!("{case_name}.npz")));
        assert_eq!(shape, want_shape, "{member}");
        let max = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("{member}: probabilities {shape:?}, max abs diff {max:.3e} (bound {bound:.3e})");
        assert!(max <= bound, "{member}: probabilities differ by {max}");
        assert_eq!(
            pickle_repr(&out.join(format!("{case_name}.pkl"))),
            pickle_repr(&golden.join(format!("{case_name}.pkl"))),
            "{member}: properties"
        );
        members.insert(member, (got, want, shape, bound));
    }
    for (name, [a, b]) in ENSEMBLES {
        let (ours_a, theirs_a, shape, bound_a) = &members[a];
        let (ours_b, theirs_b, _, bound_b) = &members[b];
        // nnUNetv2_ensemble's average_probabilities: the first array, += the second, /= 2, in f32.
        let average = |x: &[f32], y: &[f32]| -> Vec<f32> {
            x.iter().zip(y).map(|(&p, &q)| (p + q) / 2.0).collect()
        };
        let (ours, theirs) = (average(ours_a, ours_b), average(theirs_a, theirs_b));
        let heads = shape[0];
        let n = ours.len() / heads;
        let argmax = |p: &[f32], v: usize| -> u8 {
            let mut best = 0;
            for h in 1..heads {
                if p[h * n + v] > p[best * n + v] {
                    best = h;
                }
            }
            best as u8
        };
        let margin = 2.0 * (bound_a + bound_b) / 2.0;
        let their_ensemble = nnu_volume::read_labels(&ens.join(format!("theirs_{name}.nii.gz")))
            .unwrap()
            .data;
        let our_ensemble = nnu_volume::read_labels(&ens.join(format!("ours_{name}.nii.gz")))
            .unwrap()
            .data;
        assert_eq!(their_ensemble.shape(), &shape[1..], "{name}");
        let (their_labels, our_labels) = (
            their_ensemble.as_standard_layout(),
            our_ensemble.as_standard_layout(),
        );
        let (their_labels, our_labels) = (
            their_labels.as_slice().unwrap(),
            our_labels.as_slice().unwrap(),
        );
        let (mut ties, mut differ, mut differ_not_tie) = (0usize, 0usize, 0usize);
        for v in 0..n {
            let label = argmax(&ours, v);
            assert_eq!(
                label, our_labels[v],
                "{name}: voxel {v}: nnUNetv2_ensemble on our files"
            );
            let mut top: Vec<f32> = (0..heads).map(|h| theirs[h * n + v]).collect();
            top.sort_by(|p, q| q.total_cmp(p));
            let tie = top[0] - top[1] <= margin;
            ties += tie as usize;
            if label != their_labels[v] {
                differ += 1;
                differ_not_tie += (!tie) as usize;
            }
        }
        let foreground = their_labels.iter().filter(|&&l| l != 0).count();
        eprintln!(
            "ensemble {name} ({a} + {b}): {n} voxels ({foreground} foreground in nnunetv2's), {ties} near-ties \
             (margin {margin:.3e}), {differ} differ, {differ_not_tie} of them not near-ties"
        );
        assert!(foreground > 0, "{name}: the golden ensemble is empty");
        assert_eq!(differ_not_tie, 0, "{name}");
    }
}

/// A `2d` configuration exported as a true 2-D ONNX network (input `(n, c, y, x)`, 2-D `Conv` and
/// `ConvTranspose`, what an NPU user converts with ATC), written to a file and run by the native engine
/// and by tract on `(1, 1, 1, y, x)` patches, against PyTorch's output of the same 2-D network
/// (fixtures/v2/net/Dataset901_Plain_2d_fold0): max abs diff <= 1e-4. Then the model folder with that
/// file as its fold's only network (checkpoint removed) is predicted as with the checkpoint: the logits of
/// `nnUNetPredictor` (fp32 accumulators) within 1e-4, on both backends.
#[test]
fn a_2d_model_onnx_runs_in_both_backends() {
    use nnu_engine::{Backend, NativeBackend, NativeOptions, TractBackend, TractOptions};
    let golden = root().join("net/Dataset901_Plain_2d_fold0");
    let model_dir = root().join("models/Dataset901_Plain/nnUNetTrainer__nnUNetPlans__2d");
    let folder = nnu_artifacts::v2::V2ModelFolder::open(&model_dir).unwrap();
    let loaded = nnu_onnx_export::from_artifacts::load_v2_model_folder(
        &folder,
        Some(0),
        "checkpoint_final.pth",
    )
    .unwrap();
    assert_eq!(loaded.patch_size, [32, 32]);
    let exported = nnu_onnx_export::v2::export_v2(
        &loaded.arch,
        &loaded.patch_size,
        loaded.state_dict,
        &nnu_onnx_export::ExportOptions::default(),
    )
    .unwrap();
    let graph = exported.model.graph.as_ref().unwrap();
    let input_rank = graph.input[0]
        .r#type
        .as_ref()
        .and_then(|t| t.value.as_ref())
        .and_then(|nnu_onnx_export::pb::type_proto::Value::TensorType(t)| t.shape.as_ref())
        .map(|s| s.dim.len());
    assert_eq!(input_rank, Some(4), "a true 2-D network");
    let tmp = tempfile::tempdir().unwrap();
    let onnx = tmp.path().join("model.onnx");
    std::fs::write(&onnx, exported.to_bytes()).unwrap();

    let (shape, input) = read_npy_f32(&golden.join("input.npy"));
    assert_eq!(shape, [1, 1, 32, 32]);
    let (want_shape, want) = read_npy_f32(&golden.join("output.npy"));
    let patch = ndarray::Array5::from_shape_vec((1, 1, 1, 32, 32), input).unwrap();
    let backends: Vec<Box<dyn Backend>> = vec![
        Box::new(
            NativeBackend::load(
                &onnx,
                &NativeOptions::default().threads(2).patch_size([1, 32, 32]),
            )
            .unwrap(),
        ),
        Box::new(
            TractBackend::load(
                &onnx,
                &TractOptions::default().threads(2).patch_size([1, 32, 32]),
            )
            .unwrap(),
        ),
    ];
    for mut b in backends {
        assert_eq!(b.patch_size(), [1, 32, 32]);
        let out = b.run(patch.view()).unwrap();
        assert_eq!(out.shape(), [1, want_shape[1], 1, 32, 32], "{}", b.name());
        let max = out
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("2-D model.onnx in {}: max abs diff {max:.3e}", b.name());
        assert!(max <= TOL, "{}: {max}", b.name());
    }

    // The model folder with only the 2-D model.onnx in fold_0.
    let copy = tmp.path().join("nnUNetTrainer__nnUNetPlans__2d");
    std::fs::create_dir_all(copy.join("fold_0")).unwrap();
    for f in ["dataset.json", "plans.json"] {
        std::fs::copy(model_dir.join(f), copy.join(f)).unwrap();
    }
    std::fs::copy(&onnx, copy.join("fold_0/model.onnx")).unwrap();
    let model = V2Model::open(&copy, Some("2d"), "checkpoint_final.pth").unwrap();
    let files = vec![root().join("cases/plain_a_0000.nii.gz")];
    let (data, _, _) = v2_preprocess_files(&files, &model.params).unwrap();
    let (_, want) = read_npy_f32(&root().join("predict/Dataset901_Plain_2d_plain_a_logits.npy"));
    for kind in [BackendKind::Native, BackendKind::Tract] {
        let mut b = load_v2_backends(&model, &[0], &CpuBackendOptions::new(kind, 2)).unwrap();
        assert_eq!(b.mirror_axes.as_deref(), Some(&[1, 2][..]));
        let opts = PredictOptions {
            mirrors: b.default_mirrors().unwrap(),
            ..PredictOptions::default()
        };
        let (logits, _) =
            predict_logits_v2(&data, &mut b.backends, model.window, &opts, &mut |_, _| {}).unwrap();
        let max = logits
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("2-D model.onnx predicted ({kind:?}): logits max abs diff {max:.3e}");
        assert!(max <= TOL, "{kind:?}: {max}");
    }
}
