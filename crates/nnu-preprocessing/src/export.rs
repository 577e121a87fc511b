//! From class probabilities in the preprocessed frame back to the original image: nnU-Net 1.7.1
//! `inference/segmentation_export.py` (`save_segmentation_nifti_from_softmax`, with the `transpose_backward`
//! that `predict_cases` applies first) and `postprocessing/connected_components.py`
//! (`remove_all_but_the_largest_connected_component`, `load_postprocessing`).

use ndarray::{Array3, Array4, ArrayView3, ArrayView4, Axis, Zip};
use serde::{Deserialize, Serialize};

use crate::case::{check_transpose, CaseProperties, PreprocessParams};
use crate::crop::{check_bbox, crop_to_bbox_mut};
use crate::resample::{
    argmax_into, resample_channel_into, shape3, Order, PlaneStream, ResamplePlan,
};
use crate::PreprocessError;
use nnu_alloc::{try_from_elem, try_push, try_vec};

/// Options of the export resampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportOptions {
    /// In-plane / 3-D interpolation order of the probabilities (`order`, default 1 as in nnU-Net).
    pub order: Order,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            order: Order::Linear,
        }
    }
}

/// Checks the export inputs and returns the resampling plan back to the cropped original shape.
fn export_plan(
    props: &CaseProperties,
    params: &PreprocessParams,
) -> Result<ResamplePlan, PreprocessError> {
    check_transpose(params.transpose_backward)?;
    check_bbox(&props.crop_bbox, props.original_size_of_raw_data)?;
    let cropped = props.size_after_cropping;
    if (0..3).any(|i| props.crop_bbox[i][1] - props.crop_bbox[i][0] != cropped[i]) {
        return Err(PreprocessError::InvalidBbox {
            bbox: props.crop_bbox,
            shape: props.original_size_of_raw_data,
        });
    }
    Ok(ResamplePlan::for_export(
        cropped,
        props.original_spacing,
        props.spacing_after_resampling,
    ))
}

/// One plane stream per class channel of `probs` (c, z, y, x in the preprocessed, transposed frame), after
/// `transpose_backward`; `None` when the resampling cannot stream (order 3 changing z without separate z,
/// separate z along axis 1 or 2).
fn class_streams<'a>(
    probs: ArrayView4<'a, f32>,
    plan: &ResamplePlan,
    params: &PreprocessParams,
    opts: &ExportOptions,
) -> Result<Option<Vec<PlaneStream<'a>>>, PreprocessError> {
    let mut streams = Vec::with_capacity(probs.shape()[0]);
    for c in 0..probs.shape()[0] {
        let ch = probs.index_axis_move(Axis(0), c);
        match PlaneStream::new(
            ch.permuted_axes(params.transpose_backward),
            plan,
            opts.order,
        )? {
            Some(s) => streams.push(s),
            None => return Ok(None),
        }
    }
    Ok(Some(streams))
}

/// Resamples each class channel of `probs` back to the cropped original shape and hands it to
/// `sink(class, channel)`; one resampled channel is alive at a time. The fallback of the streaming paths.
fn for_each_resampled_channel<E: From<PreprocessError>>(
    probs: ArrayView4<f32>,
    plan: &ResamplePlan,
    params: &PreprocessParams,
    opts: &ExportOptions,
    mut sink: impl FnMut(usize, ArrayView3<f32>) -> Result<(), E>,
) -> Result<(), E> {
    let cropped = plan.new_shape;
    let mut buf: Option<Array3<f32>> = None;
    for (c, ch) in probs.axis_iter(Axis(0)).enumerate() {
        let ch = ch.permuted_axes(params.transpose_backward);
        if shape3(ch.shape()) == cropped {
            sink(c, ch)?;
        } else {
            let b = match &mut buf {
                Some(b) => b,
                slot @ None => slot.insert(
                    try_from_elem(cropped, 0.0f32, "a resampled class channel")
                        .map_err(PreprocessError::from)?,
                ),
            };
            resample_channel_into(ch, b.view_mut(), plan, opts.order)?;
            sink(c, b.view())?;
        }
    }
    Ok(())
}

/// The label map in the original image frame, as `save_segmentation_nifti_from_softmax` computes it:
/// `transpose_backward`, resampling of every class channel to `size_after_cropping` (order `opts.order`,
/// separate z with order 0 as [`ResamplePlan::for_export`] decides: the original spacing first), argmax over
/// classes (the first maximum wins, as `np.argmax`), pasted into zeros of `original_size_of_raw_data` at
/// `crop_bbox`.
///
/// Memory: with orders 0 and 1, and with separate z along the first axis (the usual cases), every class is
/// resampled and compared plane by plane, straight into the pasted region of the output: besides the u8
/// output only per-thread planes are alive. Otherwise (order 3 without separate z, separate z along another
/// axis) the argmax is accumulated channel by channel: one resampled f32 channel and the running maximum
/// (f32) of the cropped shape are alive besides the output (order 3 also one f64 buffer of the
/// in-plane-resized size). The labels are the same either way.
///
/// # Errors
/// [`PreprocessError`] for more than 256 classes, an invalid transpose or box, or empty shapes.
pub fn export_segmentation(
    probs: ArrayView4<f32>,
    props: &CaseProperties,
    params: &PreprocessParams,
    opts: &ExportOptions,
) -> Result<Array3<u8>, PreprocessError> {
    let n_classes = probs.shape()[0];
    if n_classes > 256 {
        return Err(PreprocessError::TooManyClasses(n_classes));
    }
    let plan = export_plan(props, params)?;
    let mut seg = try_from_elem(props.original_size_of_raw_data, 0u8, "the segmentation")?;
    // the argmax is written straight into the pasted region of the output
    let mut label = crop_to_bbox_mut(seg.view_mut(), &props.crop_bbox)?;
    if n_classes == 0 {
        return Ok(seg);
    }
    if let Some(streams) = class_streams(probs, &plan, params, opts)? {
        argmax_into(&streams, label);
        return Ok(seg);
    }
    let mut best = try_from_elem(plan.new_shape, 0.0f32, "the export's running maximum")?;
    for_each_resampled_channel(
        probs,
        &plan,
        params,
        opts,
        |c, ch| -> Result<(), PreprocessError> {
            if c == 0 {
                best.assign(&ch);
            } else {
                let c = c as u8;
                Zip::from(&mut best)
                    .and(&mut label)
                    .and(&ch)
                    .par_for_each(|b, l, &v| {
                        // np.argmax: the first maximum wins; NaN counts as the maximum.
                        if v > *b || (v.is_nan() && !b.is_nan()) {
                            *b = v;
                            *l = c;
                        }
                    });
            }
            Ok(())
        },
    )?;
    Ok(seg)
}

/// The class probabilities in the original image frame (c, z, y, x): resampled as in
/// [`export_segmentation`], pasted at `crop_bbox` into zeros of `original_size_of_raw_data` (for
/// `--save-probabilities`; nnU-Net itself saves the unpasted resampled array as float16). Where the
/// resampling streams (see [`export_segmentation`]) each class is written straight into the output.
///
/// # Errors
/// As [`export_segmentation`].
pub fn export_probabilities(
    probs: ArrayView4<f32>,
    props: &CaseProperties,
    params: &PreprocessParams,
    opts: &ExportOptions,
) -> Result<Array4<f32>, PreprocessError> {
    export_plan(props, params)?;
    let [z, y, x] = props.original_size_of_raw_data;
    let mut out = try_from_elem(
        (probs.shape()[0], z, y, x),
        0.0f32,
        "the probabilities in the image's frame",
    )?;
    export_probabilities_per_class(probs, props, params, opts, |c, ch| {
        out.index_axis_mut(Axis(0), c).assign(&ch);
        Ok::<(), PreprocessError>(())
    })?;
    Ok(out)
}

/// [`export_probabilities`] one class at a time, for writing them without holding them all: each class
/// in the original image frame (z, y, x, zeros outside `crop_bbox`) is handed to `sink(class, channel)`
/// in class order, in one f32 buffer of `original_size_of_raw_data` that the next class overwrites. The
/// channels one after the other are the C-order data of [`export_probabilities`]'s array, bit for bit
/// (it is built from them).
///
/// # Errors
/// As [`export_segmentation`], [`PreprocessError::OutOfMemory`] when the buffer cannot be allocated, and
/// whatever `sink` returns (which stops the export).
pub fn export_probabilities_per_class<E: From<PreprocessError>>(
    probs: ArrayView4<f32>,
    props: &CaseProperties,
    params: &PreprocessParams,
    opts: &ExportOptions,
    mut sink: impl FnMut(usize, ArrayView3<f32>) -> Result<(), E>,
) -> Result<(), E> {
    let plan = export_plan(props, params)?;
    let mut channel = try_from_elem(
        props.original_size_of_raw_data,
        0.0f32,
        "a class of the probabilities in the image's frame",
    )
    .map_err(PreprocessError::from)?;
    if let Some(streams) = class_streams(probs, &plan, params, opts)? {
        for (c, stream) in streams.iter().enumerate() {
            let region = crop_to_bbox_mut(channel.view_mut(), &props.crop_bbox)?;
            stream.write_into(region, &|v| v as f32);
            sink(c, channel.view())?;
        }
        return Ok(());
    }
    for_each_resampled_channel(probs, &plan, params, opts, |c, ch| {
        crop_to_bbox_mut(channel.view_mut(), &props.crop_bbox)?.assign(&ch);
        sink(c, channel.view())
    })
}

/// The content of a model's `postprocessing.json` that inference uses (`load_postprocessing`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Postprocessing {
    /// `for_which_classes`: each entry is one class or a joint region of several classes.
    pub for_which_classes: Vec<Vec<u8>>,
    /// `min_valid_object_sizes` (parsed from its Python-literal string): per entry of `for_which_classes`,
    /// components smaller than this volume (mm^3) are removed; larger ones are kept. `None`: all but the
    /// largest are removed.
    pub min_valid_object_sizes: Option<Vec<(Vec<u8>, f64)>>,
}

impl Postprocessing {
    /// Parses `postprocessing.json`.
    ///
    /// # Errors
    /// [`PreprocessError::Postprocessing`] naming what is malformed.
    pub fn from_json_str(text: &str) -> Result<Self, PreprocessError> {
        let err = |m: String| PreprocessError::Postprocessing(m);
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        let classes = v
            .get("for_which_classes")
            .and_then(|c| c.as_array())
            .ok_or_else(|| err("missing list for_which_classes".into()))?;
        let mut for_which_classes = Vec::new();
        for c in classes {
            let region = match c {
                serde_json::Value::Array(a) => {
                    a.iter().map(json_label).collect::<Option<Vec<u8>>>()
                }
                other => json_label(other).map(|l| vec![l]),
            }
            .ok_or_else(|| {
                err(format!(
                    "for_which_classes entry {c} is not a label or list of labels"
                ))
            })?;
            for_which_classes.push(region);
        }
        let min_valid_object_sizes = match v.get("min_valid_object_sizes") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(parse_size_dict(s).map_err(err)?),
            Some(other) => {
                return Err(err(format!(
                    "min_valid_object_sizes is not a string: {other}"
                )))
            }
        };
        Ok(Postprocessing {
            for_which_classes,
            min_valid_object_sizes,
        })
    }
}

fn json_label(v: &serde_json::Value) -> Option<u8> {
    v.as_u64().and_then(|x| u8::try_from(x).ok())
}

/// Parses the `str(dict)` nnU-Net writes, e.g. `{1: 1234.0, (1, 2): np.float64(5.5)}`.
fn parse_size_dict(s: &str) -> Result<Vec<(Vec<u8>, f64)>, String> {
    let body = s
        .trim()
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .ok_or_else(|| format!("min_valid_object_sizes {s:?} is not a dict literal"))?;
    let mut out = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let (key, after) = if let Some(r) = rest.strip_prefix('(') {
            let end = r
                .find(')')
                .ok_or_else(|| format!("unclosed tuple in {s:?}"))?;
            let labels = r[..end]
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| {
                    t.parse::<u8>()
                        .map_err(|_| format!("bad label {t:?} in {s:?}"))
                })
                .collect::<Result<Vec<u8>, String>>()?;
            (labels, &r[end + 1..])
        } else {
            let end = rest
                .find(':')
                .ok_or_else(|| format!("missing ':' in {s:?}"))?;
            let t = rest[..end].trim();
            (
                vec![t
                    .parse::<u8>()
                    .map_err(|_| format!("bad label {t:?} in {s:?}"))?],
                &rest[end..],
            )
        };
        let after = after
            .trim_start()
            .strip_prefix(':')
            .ok_or_else(|| format!("missing ':' in {s:?}"))?;
        let (val, next) = match after.find(',') {
            Some(i) if !after[..i].contains('(') || after[..i].contains(')') => {
                (&after[..i], &after[i + 1..])
            }
            Some(_) => {
                let close = after
                    .find(')')
                    .ok_or_else(|| format!("unclosed call in {s:?}"))?;
                match after[close..].find(',') {
                    Some(j) => (&after[..close + j], &after[close + j + 1..]),
                    None => (after, ""),
                }
            }
            None => (after, ""),
        };
        let mut val = val.trim();
        if let Some(open) = val.find('(') {
            val = val[open + 1..].trim_end_matches(')');
        }
        let size = val
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("bad size {val:?} in {s:?}"))?;
        out.push((key, size));
        rest = next.trim();
    }
    Ok(out)
}

/// nnU-Net's `remove_all_but_the_largest_connected_component`, in place: for each entry of
/// `for_which_classes` (a class or a joint region), label the 6-connected components of the region; keep every
/// component whose volume (`voxels * volume_per_voxel`) equals the largest (ties all kept); remove (set to 0)
/// the others, or with `min_valid_object_sizes` only those smaller than the entry's size.
///
/// `volume_per_voxel` is the product of the image spacing.
///
/// # Errors
/// [`PreprocessError::OutOfMemory`] when the region mask or the component labels (a u32 per voxel)
/// cannot be allocated; `seg` is unchanged for the region being processed then.
pub fn remove_all_but_largest_component(
    seg: &mut Array3<u8>,
    pp: &Postprocessing,
    volume_per_voxel: f64,
) -> Result<(), PreprocessError> {
    let shape = shape3(seg.shape());
    for region in &pp.for_which_classes {
        let min_size = pp
            .min_valid_object_sizes
            .as_ref()
            .and_then(|m| m.iter().find(|(k, _)| k == region).map(|(_, v)| *v));
        let mut in_region = try_vec(seg.len(), false, "the postprocessing's region mask")?;
        for (m, l) in in_region.iter_mut().zip(seg.iter()) {
            *m = region.contains(l);
        }
        let (labels, sizes) = label_components(&in_region, shape)?;
        if sizes.is_empty() {
            continue;
        }
        let volumes: Vec<f64> = sizes.iter().map(|&n| n as f64 * volume_per_voxel).collect();
        let max = volumes.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let remove: Vec<bool> = volumes
            .iter()
            .map(|&v| v != max && min_size.is_none_or(|m| v < m))
            .collect();
        for (l, &comp) in seg.iter_mut().zip(labels.iter()) {
            if comp > 0 && remove[(comp - 1) as usize] {
                *l = 0;
            }
        }
    }
    Ok(())
}

/// 6-connected component labelling (`scipy.ndimage.label` default structure) of a flat (z, y, x) mask in
/// logical order: per voxel 0 (background) or component id from 1, and each component's voxel count.
fn label_components(
    mask: &[bool],
    shape: [usize; 3],
) -> Result<(Vec<u32>, Vec<usize>), PreprocessError> {
    let [nz, ny, nx] = shape;
    let mut labels = try_vec(mask.len(), 0u32, "the postprocessing's component labels")?;
    let mut sizes = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        let id = sizes.len() as u32 + 1;
        let mut count = 0usize;
        labels[start] = id;
        try_push(&mut stack, start, STACK)?;
        while let Some(i) = stack.pop() {
            count += 1;
            let x = i % nx;
            let y = (i / nx) % ny;
            let z = i / (nx * ny);
            let mut visit = |j: usize| -> Result<(), PreprocessError> {
                if mask[j] && labels[j] == 0 {
                    labels[j] = id;
                    try_push(&mut stack, j, STACK)?;
                }
                Ok(())
            };
            if x > 0 {
                visit(i - 1)?;
            }
            if x + 1 < nx {
                visit(i + 1)?;
            }
            if y > 0 {
                visit(i - nx)?;
            }
            if y + 1 < ny {
                visit(i + nx)?;
            }
            if z > 0 {
                visit(i - nx * ny)?;
            }
            if z + 1 < nz {
                visit(i + nx * ny)?;
            }
        }
        try_push(&mut sizes, count, "the postprocessing's component sizes")?;
    }
    Ok((labels, sizes))
}

const STACK: &str = "the postprocessing's stack";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postprocessing_json() {
        let pp = Postprocessing::from_json_str(
            r#"{"for_which_classes": [[1, 2], 2], "min_valid_object_sizes": "{(1, 2): 100.5, 2: np.float64(7.0)}"}"#,
        )
        .unwrap();
        assert_eq!(pp.for_which_classes, vec![vec![1, 2], vec![2]]);
        assert_eq!(
            pp.min_valid_object_sizes,
            Some(vec![(vec![1, 2], 100.5), (vec![2], 7.0)])
        );
        assert!(Postprocessing::from_json_str(r#"{"for_which_classes": "x"}"#).is_err());
    }

    #[test]
    fn keeps_largest_and_ties() {
        let mut seg = Array3::<u8>::zeros((1, 3, 9));
        // components of class 1 with sizes 3, 3 and 1 (6-connectivity: diagonal voxels are separate)
        for x in [0, 1, 2, 4, 5, 6] {
            seg[[0, 0, x]] = 1;
        }
        seg[[0, 2, 8]] = 1;
        seg[[0, 1, 3]] = 2;
        let pp = Postprocessing {
            for_which_classes: vec![vec![1]],
            min_valid_object_sizes: None,
        };
        remove_all_but_largest_component(&mut seg, &pp, 1.0).unwrap();
        assert_eq!(seg.iter().filter(|&&l| l == 1).count(), 6);
        assert_eq!(seg[[0, 2, 8]], 0);
        assert_eq!(seg[[0, 1, 3]], 2);
    }
}
