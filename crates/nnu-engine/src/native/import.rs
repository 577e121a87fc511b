//! ONNX graph import: the nodes that produce the chosen output, turned into a list of [`Step`]s over
//! planned tensors, with shapes inferred for one fixed patch.
//!
//! Supported operators: `Conv` (3-D, any kernel, stride and symmetric padding, group 1, optional
//! bias), `InstanceNormalization`, `LeakyRelu`, `Relu`, `ConvTranspose` (3-D, kernel equal to stride,
//! no padding), `Concat` (channel axis), `Add` (two activations of the same shape), `Identity`, and
//! `Constant` (as a weight). Anything else is [`EngineError::Unsupported`] naming the node.
//!
//! A 2-D network (input `(n, c, y, x)`, 2-D `Conv` / `ConvTranspose`) is imported as the equivalent 3-D
//! one on `(1, y, x)` patches: weights `[o, i, ky, kx]` as `[o, i, 1, ky, kx]` (the same values), kernel,
//! strides and dilations with a leading 1, pads with a leading 0. A `1 x k x k` convolution or transposed
//! convolution of one slice is the 2-D one, and instance normalisation over `(1, y, x)` is over `(y, x)`.
//!
//! Fusion: a `Conv` whose only consumer is an `InstanceNormalization` gathers the channel statistics
//! while it writes and the normalisation runs in place right after; an activation that is the only
//! consumer of a convolution or normalisation is applied in the same pass. `Concat` copies nothing: a
//! value is a list of tensors read one after the other by the next convolution. Where an operator
//! needs one contiguous tensor (a concatenation fed to `ConvTranspose`, `Add` or the output) or would
//! overwrite a value still needed elsewhere, an exact copy is made by an identity 1x1x1 convolution.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::kernels::{Activation, ConvSpec, Isa, PackedConv, PackedConvTranspose, Precision};
use super::onnx::{self, AttributeProto, GraphProto, NodeProto, TensorProto};
use crate::EngineError;

/// Index of a planned tensor.
pub(crate) type TensorId = usize;

/// Channels and spatial extents of a planned tensor (one sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TensorShape {
    pub channels: usize,
    pub dims: [usize; 3],
}

/// InstanceNormalization's affine parameters.
#[derive(Debug, Clone)]
pub(crate) struct Norm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub eps: f32,
}

/// One execution step. Steps that modify a tensor in place (`Activate`, `Add`) keep its id.
pub(crate) enum Step {
    /// `dst = act(norm(conv(concat(srcs))))`.
    Conv {
        srcs: Vec<TensorId>,
        conv: Box<PackedConv>,
        dst: TensorId,
        norm: Option<Norm>,
        act: Activation,
    },
    /// `dst = act(conv_transpose(src))`.
    ConvTranspose {
        src: TensorId,
        conv: Box<PackedConvTranspose>,
        dst: TensorId,
        act: Activation,
    },
    /// `t = act(t)`.
    Activate { t: TensorId, act: Activation },
    /// `acc += other`.
    Add { acc: TensorId, other: TensorId },
}

impl Step {
    /// Tensors read by the step (including one modified in place).
    pub(crate) fn reads(&self) -> Vec<TensorId> {
        match self {
            Step::Conv { srcs, .. } => srcs.clone(),
            Step::ConvTranspose { src, .. } => vec![*src],
            Step::Activate { t, .. } => vec![*t],
            Step::Add { acc, other } => vec![*acc, *other],
        }
    }

    /// The tensor the step creates, if any (in-place steps create none).
    pub(crate) fn creates(&self) -> Option<TensorId> {
        match self {
            Step::Conv { dst, .. } | Step::ConvTranspose { dst, .. } => Some(*dst),
            Step::Activate { .. } | Step::Add { .. } => None,
        }
    }
}

/// A network reduced to steps for one patch shape.
pub(crate) struct ImportedModel {
    pub input_channels: usize,
    pub patch: [usize; 3],
    /// Batch size fixed in the model's input, `None` when dynamic.
    pub fixed_batch: Option<usize>,
    pub classes: usize,
    pub tensors: Vec<TensorShape>,
    pub steps: Vec<Step>,
    pub input: TensorId,
    pub output: TensorId,
    /// Weight elements kept (f32 before packing).
    pub parameters: usize,
}

/// What the import needs besides the bytes.
#[derive(Debug, Clone)]
pub(crate) struct ImportOptions {
    pub origin: PathBuf,
    pub patch_size: Option<[usize; 3]>,
    pub input_channels: Option<usize>,
    pub precision: Precision,
    pub isa: Isa,
}

fn not_seg(path: &Path, reason: impl Into<String>) -> EngineError {
    EngineError::NotSegmentationModel {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn node_label(node: &NodeProto) -> String {
    if node.name.is_empty() {
        node.output.first().cloned().unwrap_or_default()
    } else {
        node.name.clone()
    }
}

/// A value of the graph during import: the tensors it is the channel concatenation of.
#[derive(Debug, Clone)]
struct Value {
    parts: Vec<TensorId>,
}

struct Importer<'a> {
    opts: &'a ImportOptions,
    /// The model is 2-D (input `(n, c, y, x)`), imported as the 3-D one on `(1, y, x)` patches.
    two_d: bool,
    weights: HashMap<String, &'a TensorProto>,
    constants: HashMap<String, TensorProto>,
    values: HashMap<String, Value>,
    /// Uses of each graph value not yet consumed (node inputs plus the graph output).
    remaining: HashMap<String, usize>,
    /// Graph values that currently refer to each tensor.
    names_of: Vec<Vec<String>>,
    tensors: Vec<TensorShape>,
    steps: Vec<Step>,
    /// For each tensor, the step that created it.
    producer: Vec<Option<usize>>,
    parameters: usize,
}

impl<'a> Importer<'a> {
    fn unsupported(&self, node: &NodeProto, reason: impl Into<String>) -> EngineError {
        EngineError::Unsupported {
            path: self.opts.origin.clone(),
            op: node.op_type.clone(),
            node: node_label(node),
            reason: reason.into(),
        }
    }

    fn new_tensor(&mut self, shape: TensorShape) -> TensorId {
        self.tensors.push(shape);
        self.names_of.push(Vec::new());
        self.producer.push(None);
        self.tensors.len() - 1
    }

    fn bind(&mut self, name: &str, value: Value) {
        for &t in &value.parts {
            self.names_of[t].push(name.to_string());
        }
        self.values.insert(name.to_string(), value);
    }

    fn value(&self, node: &NodeProto, name: &str) -> Result<Value, EngineError> {
        self.values.get(name).cloned().ok_or_else(|| {
            self.unsupported(
                node,
                format!("input {name:?} is neither an activation nor known at this point"),
            )
        })
    }

    fn weight(&self, node: &NodeProto, name: &str) -> Result<(Vec<usize>, Vec<f32>), EngineError> {
        let t = self
            .weights
            .get(name)
            .copied()
            .or_else(|| self.constants.get(name))
            .ok_or_else(|| {
                self.unsupported(
                    node,
                    format!("{name:?} must be a constant (an initializer)"),
                )
            })?;
        let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
        let data = t.to_f32().ok_or_else(|| {
            self.unsupported(
                node,
                format!(
                    "tensor {name:?} has data type {} or a size that does not match {dims:?}",
                    t.data_type
                ),
            )
        })?;
        Ok((dims, data))
    }

    /// A 2-D network's convolution weight `[o, i, ky, kx]` as the 3-D `[o, i, 1, ky, kx]` (the data is
    /// the same); any other shape unchanged.
    fn lift_weight_shape(&self, mut wshape: Vec<usize>) -> Vec<usize> {
        if self.two_d && wshape.len() == 4 {
            wshape.insert(2, 1);
        }
        wshape
    }

    fn channels(&self, v: &Value) -> usize {
        v.parts.iter().map(|&t| self.tensors[t].channels).sum()
    }

    fn dims(&self, v: &Value) -> [usize; 3] {
        self.tensors[v.parts[0]].dims
    }

    /// True when `t` may be modified in place by the node being imported: no other graph value
    /// referring to it has uses left.
    fn exclusive(&self, t: TensorId) -> bool {
        self.names_of[t]
            .iter()
            .all(|n| self.remaining.get(n).copied().unwrap_or(0) == 0)
    }

    /// Consumes one use of each input of `node`.
    fn consume(&mut self, node: &NodeProto) {
        for i in &node.input {
            if let Some(r) = self.remaining.get_mut(i) {
                *r = r.saturating_sub(1);
            }
        }
    }

    /// An exact copy of `v` into one new tensor (identity 1x1x1 convolution in f32), optionally
    /// normalised and activated.
    fn copy(
        &mut self,
        v: &Value,
        norm: Option<Norm>,
        act: Activation,
    ) -> Result<TensorId, EngineError> {
        let c = self.channels(v);
        let mut weight = vec![0.0f32; c * c];
        for i in 0..c {
            weight[i * c + i] = 1.0;
        }
        let spec = ConvSpec {
            in_channels: c,
            out_channels: c,
            kernel: [1; 3],
            stride: [1; 3],
            pad: [0; 3],
        };
        let conv = PackedConv::new(spec, &weight, None, Precision::F32, self.opts.isa)?;
        let dst = self.new_tensor(TensorShape {
            channels: c,
            dims: self.dims(v),
        });
        self.producer[dst] = Some(self.steps.len());
        self.steps.push(Step::Conv {
            srcs: v.parts.clone(),
            conv: Box::new(conv),
            dst,
            norm,
            act,
        });
        Ok(dst)
    }

    fn import_node(&mut self, node: &NodeProto) -> Result<(), EngineError> {
        if !node.domain.is_empty() && node.domain != "ai.onnx" {
            return Err(self.unsupported(node, format!("operator domain {:?}", node.domain)));
        }
        let out_name = match node.output.as_slice() {
            [o] => o.clone(),
            [o, rest @ ..]
                if rest
                    .iter()
                    .all(|r| self.remaining.get(r).copied().unwrap_or(0) == 0) =>
            {
                o.clone()
            }
            _ => return Err(self.unsupported(node, "more than one output is used")),
        };
        match node.op_type.as_str() {
            "Conv" => self.conv(node, &out_name),
            "ConvTranspose" => self.conv_transpose(node, &out_name),
            "InstanceNormalization" => self.instance_norm(node, &out_name),
            "Relu" => self.activation(node, &out_name, Activation::Relu),
            "LeakyRelu" => {
                let alpha = attr(node, "alpha").map(|a| a.f).unwrap_or(0.01);
                self.activation(node, &out_name, Activation::LeakyRelu(alpha))
            }
            "Concat" => {
                let axis = attr(node, "axis").map(|a| a.i).unwrap_or(0);
                if axis != 1 && axis != -4 {
                    return Err(self.unsupported(
                        node,
                        format!("axis {axis}; only the channel axis (1) is supported"),
                    ));
                }
                let mut parts = Vec::new();
                let mut dims = None;
                for i in node.input.iter().filter(|i| !i.is_empty()) {
                    let v = self.value(node, i)?;
                    let d = self.dims(&v);
                    if dims.is_some_and(|x| x != d) {
                        return Err(self.unsupported(
                            node,
                            format!(
                                "inputs of different spatial shapes {:?} and {d:?}",
                                dims.unwrap_or(d)
                            ),
                        ));
                    }
                    dims = Some(d);
                    parts.extend(v.parts);
                }
                if parts.is_empty() {
                    return Err(self.unsupported(node, "no inputs"));
                }
                self.consume(node);
                self.bind(&out_name, Value { parts });
                Ok(())
            }
            "Identity" => {
                let v = self.value(node, node.input.first().map(String::as_str).unwrap_or(""))?;
                self.consume(node);
                self.bind(&out_name, v);
                Ok(())
            }
            "Add" => self.add(node, &out_name),
            "Constant" => {
                let t = attr(node, "value")
                    .and_then(|a| a.t.clone())
                    .ok_or_else(|| {
                        self.unsupported(node, "only tensor-valued `value` constants are supported")
                    })?;
                self.constants.insert(out_name, t);
                Ok(())
            }
            other => Err(self.unsupported(
                node,
                format!("operator {other} is not implemented by the native backend"),
            )),
        }
    }

    fn conv(&mut self, node: &NodeProto, out_name: &str) -> Result<(), EngineError> {
        let x = self.value(node, input(node, 0))?;
        let (wshape, w) = self.weight(node, input(node, 1))?;
        let bias = match node.input.get(2).filter(|s| !s.is_empty()) {
            Some(b) => Some(self.weight(node, b)?.1),
            None => None,
        };
        let wshape = self.lift_weight_shape(wshape);
        if wshape.len() != 5 {
            return Err(self.unsupported(
                node,
                format!("weight of rank {} (only 3-D convolutions)", wshape.len()),
            ));
        }
        let group = attr(node, "group").map(|a| a.i).unwrap_or(1);
        if group != 1 {
            return Err(self.unsupported(node, format!("group {group} (only 1)")));
        }
        check_dilations(self, node)?;
        let kernel = [wshape[2], wshape[3], wshape[4]];
        if let Some(k) = attr(node, "kernel_shape") {
            let spatial = if self.two_d {
                &kernel[1..]
            } else {
                &kernel[..]
            };
            if k.ints
                .iter()
                .map(|&v| v as usize)
                .ne(spatial.iter().copied())
            {
                return Err(self.unsupported(
                    node,
                    format!(
                        "kernel_shape {:?} differs from the weight {kernel:?}",
                        k.ints
                    ),
                ));
            }
        }
        let stride = ints3(self, node, "strides", 1)?;
        let pad = pads(self, node, kernel, stride)?;
        let cin = self.channels(&x);
        if wshape[1] != cin {
            return Err(self.unsupported(
                node,
                format!(
                    "weight expects {} input channels, the input has {cin}",
                    wshape[1]
                ),
            ));
        }
        if bias.as_ref().is_some_and(|b| b.len() != wshape[0]) {
            return Err(self.unsupported(node, "bias length differs from the output channels"));
        }
        let spec = ConvSpec {
            in_channels: cin,
            out_channels: wshape[0],
            kernel,
            stride,
            pad,
        };
        let in_dims = self.dims(&x);
        for a in 0..3 {
            if in_dims[a] + 2 * pad[a] < kernel[a] {
                return Err(not_seg(
                    &self.opts.origin,
                    format!(
                        "node {}: input {in_dims:?} is smaller than the kernel {kernel:?}",
                        node_label(node)
                    ),
                ));
            }
        }
        let conv = PackedConv::new(
            spec,
            &w,
            bias.as_deref(),
            self.opts.precision,
            self.opts.isa,
        )?;
        self.parameters += w.len() + bias.as_ref().map_or(0, Vec::len);
        let dims = conv.out_dims(in_dims);
        self.consume(node);
        let dst = self.new_tensor(TensorShape {
            channels: wshape[0],
            dims,
        });
        self.producer[dst] = Some(self.steps.len());
        self.steps.push(Step::Conv {
            srcs: x.parts,
            conv: Box::new(conv),
            dst,
            norm: None,
            act: Activation::None,
        });
        self.bind(out_name, Value { parts: vec![dst] });
        Ok(())
    }

    fn conv_transpose(&mut self, node: &NodeProto, out_name: &str) -> Result<(), EngineError> {
        let x = self.value(node, input(node, 0))?;
        let (wshape, w) = self.weight(node, input(node, 1))?;
        let bias = match node.input.get(2).filter(|s| !s.is_empty()) {
            Some(b) => Some(self.weight(node, b)?.1),
            None => None,
        };
        let wshape = self.lift_weight_shape(wshape);
        if wshape.len() != 5 {
            return Err(
                self.unsupported(node, format!("weight of rank {} (only 3-D)", wshape.len()))
            );
        }
        let group = attr(node, "group").map(|a| a.i).unwrap_or(1);
        if group != 1 {
            return Err(self.unsupported(node, format!("group {group} (only 1)")));
        }
        check_dilations(self, node)?;
        let kernel = [wshape[2], wshape[3], wshape[4]];
        let stride = ints3(self, node, "strides", 1)?;
        if stride != kernel {
            return Err(self.unsupported(
                node,
                format!("stride {stride:?} differs from the kernel {kernel:?}"),
            ));
        }
        if attr(node, "pads").is_some_and(|a| a.ints.iter().any(|&p| p != 0))
            || attr(node, "output_padding").is_some_and(|a| a.ints.iter().any(|&p| p != 0))
        {
            return Err(self.unsupported(node, "padding or output_padding (only 0)"));
        }
        if attr(node, "auto_pad")
            .is_some_and(|a| !a.s.is_empty() && a.s != b"NOTSET" && a.s != b"VALID")
        {
            return Err(self.unsupported(node, "auto_pad"));
        }
        let cin = self.channels(&x);
        if wshape[0] != cin {
            return Err(self.unsupported(
                node,
                format!(
                    "weight expects {} input channels, the input has {cin}",
                    wshape[0]
                ),
            ));
        }
        if let Some(s) = attr(node, "output_shape") {
            let d = self.dims(&x);
            let expect: Vec<i64> = (0..3).map(|a| (d[a] * kernel[a]) as i64).collect();
            if s.ints[s.ints.len().saturating_sub(3)..] != expect[..] {
                return Err(self.unsupported(node, format!("output_shape {:?}", s.ints)));
            }
        }
        let src = if x.parts.len() == 1 {
            x.parts[0]
        } else {
            self.copy(&x, None, Activation::None)?
        };
        let conv =
            PackedConvTranspose::new(cin, wshape[1], kernel, &w, bias.as_deref(), self.opts.isa)?;
        self.parameters += w.len() + bias.as_ref().map_or(0, Vec::len);
        let dims = conv.out_dims(self.tensors[src].dims);
        self.consume(node);
        let dst = self.new_tensor(TensorShape {
            channels: wshape[1],
            dims,
        });
        self.producer[dst] = Some(self.steps.len());
        self.steps.push(Step::ConvTranspose {
            src,
            conv: Box::new(conv),
            dst,
            act: Activation::None,
        });
        self.bind(out_name, Value { parts: vec![dst] });
        Ok(())
    }

    fn instance_norm(&mut self, node: &NodeProto, out_name: &str) -> Result<(), EngineError> {
        let x = self.value(node, input(node, 0))?;
        let gamma = self.weight(node, input(node, 1))?.1;
        let beta = self.weight(node, input(node, 2))?.1;
        let c = self.channels(&x);
        if gamma.len() != c || beta.len() != c {
            return Err(self.unsupported(
                node,
                format!(
                    "scale/bias of length {}/{} for {c} channels",
                    gamma.len(),
                    beta.len()
                ),
            ));
        }
        self.parameters += 2 * c;
        let eps = attr(node, "epsilon").map(|a| a.f).unwrap_or(1e-5);
        let norm = Norm { gamma, beta, eps };
        self.consume(node);
        // Fuse into the convolution that made the input when nothing else reads it.
        if let [t] = x.parts[..] {
            if self.exclusive(t) {
                if let Some(s) = self.producer[t].filter(|&s| unread_after(&self.steps, s, t)) {
                    if let Step::Conv {
                        norm: n @ None,
                        act: Activation::None,
                        ..
                    } = &mut self.steps[s]
                    {
                        *n = Some(norm);
                        self.bind(out_name, Value { parts: vec![t] });
                        return Ok(());
                    }
                }
            }
        }
        let dst = self.copy(&x, Some(norm), Activation::None)?;
        self.bind(out_name, Value { parts: vec![dst] });
        Ok(())
    }

    fn activation(
        &mut self,
        node: &NodeProto,
        out_name: &str,
        act: Activation,
    ) -> Result<(), EngineError> {
        let x = self.value(node, input(node, 0))?;
        self.consume(node);
        if let [t] = x.parts[..] {
            if self.exclusive(t) {
                if let Some(s) = self.producer[t].filter(|&s| unread_after(&self.steps, s, t)) {
                    match &mut self.steps[s] {
                        Step::Conv {
                            act: a @ Activation::None,
                            ..
                        }
                        | Step::ConvTranspose {
                            act: a @ Activation::None,
                            ..
                        } => {
                            *a = act;
                            self.bind(out_name, Value { parts: vec![t] });
                            return Ok(());
                        }
                        _ => {}
                    }
                }
                self.steps.push(Step::Activate { t, act });
                self.bind(out_name, Value { parts: vec![t] });
                return Ok(());
            }
        }
        let dst = self.copy(&x, None, act)?;
        self.bind(out_name, Value { parts: vec![dst] });
        Ok(())
    }

    fn add(&mut self, node: &NodeProto, out_name: &str) -> Result<(), EngineError> {
        if node.input.len() != 2 {
            return Err(self.unsupported(node, format!("{} inputs (expected 2)", node.input.len())));
        }
        for i in &node.input {
            if !self.values.contains_key(i) {
                return Err(self.unsupported(
                    node,
                    format!(
                        "input {i:?} is a constant; only the sum of two activations is supported"
                    ),
                ));
            }
        }
        let a = self.value(node, input(node, 0))?;
        let b = self.value(node, input(node, 1))?;
        let (sa, sb) = (
            (self.channels(&a), self.dims(&a)),
            (self.channels(&b), self.dims(&b)),
        );
        if sa != sb {
            return Err(self.unsupported(
                node,
                format!("inputs of shapes {sa:?} and {sb:?} (no broadcasting)"),
            ));
        }
        self.consume(node);
        let single = |v: &Value| if let [t] = v.parts[..] { Some(t) } else { None };
        let (acc, other) = match (single(&a), single(&b)) {
            (Some(ta), _) if self.exclusive(ta) && single(&b) != Some(ta) => (ta, b),
            (_, Some(tb)) if self.exclusive(tb) && single(&a) != Some(tb) => (tb, a),
            _ => (self.copy(&a, None, Activation::None)?, b),
        };
        let other = match single(&other) {
            Some(t) => t,
            None => self.copy(&other, None, Activation::None)?,
        };
        self.steps.push(Step::Add { acc, other });
        self.bind(out_name, Value { parts: vec![acc] });
        Ok(())
    }
}

/// True when no step after `s` reads `t`, so the step `s` that made `t` may still change what it
/// writes.
fn unread_after(steps: &[Step], s: usize, t: TensorId) -> bool {
    steps[s + 1..].iter().all(|st| !st.reads().contains(&t))
}

fn attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn input(node: &NodeProto, i: usize) -> &str {
    node.input.get(i).map(String::as_str).unwrap_or("")
}

fn ints3(
    imp: &Importer,
    node: &NodeProto,
    name: &str,
    default: usize,
) -> Result<[usize; 3], EngineError> {
    match attr(node, name) {
        None => Ok([default; 3]),
        Some(a) if a.ints.len() == 3 && a.ints.iter().all(|&v| v >= 1) => {
            Ok([a.ints[0] as usize, a.ints[1] as usize, a.ints[2] as usize])
        }
        // A 2-D network's (y, x) values, the slice axis 1.
        Some(a) if imp.two_d && a.ints.len() == 2 && a.ints.iter().all(|&v| v >= 1) => {
            Ok([1, a.ints[0] as usize, a.ints[1] as usize])
        }
        Some(a) => Err(imp.unsupported(node, format!("{name} {:?}", a.ints))),
    }
}

fn check_dilations(imp: &Importer, node: &NodeProto) -> Result<(), EngineError> {
    if ints3(imp, node, "dilations", 1)? != [1; 3] {
        return Err(imp.unsupported(node, "dilations other than 1"));
    }
    Ok(())
}

fn pads(
    imp: &Importer,
    node: &NodeProto,
    kernel: [usize; 3],
    stride: [usize; 3],
) -> Result<[usize; 3], EngineError> {
    let auto = attr(node, "auto_pad")
        .map(|a| a.s.as_slice())
        .unwrap_or(b"");
    match auto {
        b"" | b"NOTSET" => {}
        b"VALID" => return Ok([0; 3]),
        b"SAME_UPPER" | b"SAME_LOWER" if stride == [1; 3] && kernel.iter().all(|k| k % 2 == 1) => {
            return Ok(kernel.map(|k| k / 2));
        }
        other => {
            return Err(
                imp.unsupported(node, format!("auto_pad {}", String::from_utf8_lossy(other)))
            )
        }
    }
    match attr(node, "pads") {
        None => Ok([0; 3]),
        Some(a)
            if a.ints.len() == 6
                && a.ints.iter().all(|&p| p >= 0)
                && a.ints[..3] == a.ints[3..] =>
        {
            Ok([a.ints[0] as usize, a.ints[1] as usize, a.ints[2] as usize])
        }
        // A 2-D network's (y, x) begins and ends, no padding along the slice axis.
        Some(a)
            if imp.two_d
                && a.ints.len() == 4
                && a.ints.iter().all(|&p| p >= 0)
                && a.ints[..2] == a.ints[2..] =>
        {
            Ok([0, a.ints[0] as usize, a.ints[1] as usize])
        }
        Some(a) => {
            Err(imp.unsupported(node, format!("pads {:?} (only symmetric padding)", a.ints)))
        }
    }
}

/// The fixed size of a dimension, `None` when symbolic.
fn dim_value(d: &onnx::tensor_shape_proto::Dimension) -> Option<usize> {
    d.fixed_size()
}

/// Orders `nodes` (indices) so that every node comes after the producers of its inputs, keeping the
/// file's order where it already is one.
fn topological(
    graph: &GraphProto,
    needed: &[usize],
    known: &HashSet<String>,
) -> Option<Vec<usize>> {
    let mut defined = known.clone();
    let mut left: Vec<usize> = needed.to_vec();
    let mut order = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let pos = left.iter().position(|&n| {
            graph.node[n]
                .input
                .iter()
                .all(|i| i.is_empty() || defined.contains(i))
        })?;
        let n = left.remove(pos);
        defined.extend(graph.node[n].output.iter().cloned());
        order.push(n);
    }
    Some(order)
}

/// Imports a decoded model for one patch shape.
pub(crate) fn import(
    model: &onnx::ModelProto,
    opts: &ImportOptions,
) -> Result<ImportedModel, EngineError> {
    let path = &opts.origin;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| not_seg(path, "the file has no graph"))?;
    let weights: HashMap<String, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !weights.contains_key(&i.name))
        .collect();
    let [input] = inputs[..] else {
        return Err(not_seg(
            path,
            format!("{} inputs, expected 1", inputs.len()),
        ));
    };
    let shape = input
        .tensor_type()
        .and_then(|t| t.shape.as_ref())
        .ok_or_else(|| not_seg(path, format!("input {:?} has no tensor shape", input.name)))?;
    if !(shape.dim.len() == 5 || shape.dim.len() == 4) {
        return Err(not_seg(
            path,
            format!(
                "input rank {}, expected 5 (n, c, z, y, x) or 4 (n, c, y, x)",
                shape.dim.len()
            ),
        ));
    }
    let two_d = shape.dim.len() == 4;
    let mut dims: Vec<Option<usize>> = shape.dim.iter().map(dim_value).collect();
    if two_d {
        // A 2-D network runs as the 3-D one on one slice.
        dims.insert(2, Some(1));
        if let Some(r) = opts.patch_size.filter(|r| r[0] != 1) {
            return Err(not_seg(
                path,
                format!(
                    "input rank 4: a 2-D network (n, c, y, x) takes patches of one slice, \
                     [1, y, x], not {r:?}"
                ),
            ));
        }
    }
    let channels = match (dims[1], opts.input_channels) {
        (Some(c), Some(want)) if c != want => {
            return Err(not_seg(
                path,
                format!("model has {c} input channels, {want} requested"),
            ))
        }
        (Some(c), _) | (None, Some(c)) => c,
        (None, None) => return Err(EngineError::UnknownShape { path: path.clone() }),
    };
    let model_patch = match (dims[2], dims[3], dims[4]) {
        (Some(z), Some(y), Some(x)) => Some([z, y, x]),
        _ => None,
    };
    let patch = match (model_patch, opts.patch_size) {
        (Some(m), Some(r)) if m != r => {
            return Err(EngineError::PatchMismatch {
                path: path.clone(),
                model: m,
                requested: r,
            })
        }
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => return Err(EngineError::UnknownShape { path: path.clone() }),
    };
    if patch.contains(&0) || channels == 0 {
        return Err(not_seg(
            path,
            format!("empty input shape c={channels}, patch {patch:?}"),
        ));
    }

    // The final head: the output named `class`, else the first.
    let output = graph
        .output
        .iter()
        .find(|o| o.name == "class")
        .or_else(|| graph.output.first())
        .ok_or_else(|| not_seg(path, "the model has no output"))?
        .name
        .clone();

    // Nodes the output depends on.
    let producer: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut needed = vec![false; graph.node.len()];
    let mut stack = vec![output.as_str()];
    while let Some(v) = stack.pop() {
        if let Some(&n) = producer.get(v) {
            if !needed[n] {
                needed[n] = true;
                stack.extend(graph.node[n].input.iter().map(String::as_str));
            }
        }
    }
    let needed: Vec<usize> = (0..graph.node.len()).filter(|&i| needed[i]).collect();
    let mut known: HashSet<String> = weights.keys().cloned().collect();
    known.insert(input.name.clone());
    let order = topological(graph, &needed, &known).ok_or_else(|| {
        not_seg(
            path,
            "the graph has a cycle or an input that no node produces",
        )
    })?;

    let mut remaining: HashMap<String, usize> = HashMap::new();
    for &n in &order {
        for i in &graph.node[n].input {
            *remaining.entry(i.clone()).or_default() += 1;
        }
    }
    *remaining.entry(output.clone()).or_default() += 1;

    let mut imp = Importer {
        opts,
        two_d,
        weights,
        constants: HashMap::new(),
        values: HashMap::new(),
        remaining,
        names_of: Vec::new(),
        tensors: Vec::new(),
        steps: Vec::new(),
        producer: Vec::new(),
        parameters: 0,
    };
    let input_t = imp.new_tensor(TensorShape {
        channels,
        dims: patch,
    });
    imp.bind(
        &input.name,
        Value {
            parts: vec![input_t],
        },
    );
    for &n in &order {
        imp.import_node(&graph.node[n])?;
    }
    let out = imp
        .values
        .get(&output)
        .cloned()
        .ok_or_else(|| not_seg(path, format!("output {output:?} is not an activation")))?;
    let out_t = match out.parts[..] {
        [t] if t != input_t => t,
        _ => imp.copy(&out, None, Activation::None)?,
    };
    let out_shape = imp.tensors[out_t];
    if out_shape.dims != patch {
        return Err(not_seg(
            path,
            format!(
                "output {output:?} has spatial shape {:?} for patch {patch:?}",
                out_shape.dims
            ),
        ));
    }
    Ok(ImportedModel {
        input_channels: channels,
        patch,
        fixed_batch: dims[0],
        classes: out_shape.channels,
        tensors: imp.tensors,
        steps: imp.steps,
        input: input_t,
        output: out_t,
        parameters: imp.parameters,
    })
}
