//! A small ONNX graph builder over `nnu_onnx_proto` that consumes state_dict tensors as it goes.
//!
//! Each layer method takes the tensors its PyTorch module registered, checks their shapes against
//! the incoming activation (channels) and the plans (kernel sizes), and appends the ONNX node.
//! Tensor names of activations are the module path plus the layer (`loc0.4.1.blocks.0.lrelu`);
//! initializers keep their state_dict key.

use std::collections::HashMap;

use nnu_onnx_proto::{AttributeProto, DataType, NodeProto, TensorProto, ValueInfoProto};

use crate::error::{ExportError, Result};
use crate::state_dict::{StateDict, WeightTensor};

/// Negative slope of `nn.LeakyReLU` as the trainers configure it (`negative_slope: 1e-2`).
pub(crate) const LEAKY_RELU_SLOPE: f32 = 1e-2;
/// `eps` of `nn.InstanceNorm3d/2d` as the trainers configure it.
pub(crate) const INSTANCE_NORM_EPS: f32 = 1e-5;

/// An activation in the graph: its tensor name, channel count and spatial extents.
#[derive(Debug, Clone)]
pub(crate) struct Value {
    pub name: String,
    pub channels: usize,
    pub spatial: Vec<usize>,
}

/// Graph under construction plus the tensors not yet consumed.
pub(crate) struct GraphBuilder {
    /// Remaining state_dict tensors by key, with their state_dict position (for error order).
    weights: HashMap<String, (usize, WeightTensor)>,
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    ndim: usize,
}

pub(crate) fn ints_attr(name: &str, v: &[usize]) -> AttributeProto {
    let ints: Vec<i64> = v.iter().map(|&x| x as i64).collect();
    nnu_onnx_proto::ints_attr(name, &ints)
}

pub(crate) use nnu_onnx_proto::{float_attr, int_attr, node};

/// Renders an expected shape, `?` for "any".
fn pattern_string(p: &[Option<usize>]) -> String {
    let parts: Vec<String> = p
        .iter()
        .map(|d| d.map_or_else(|| "?".to_string(), |v| v.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// Spatial output extent of a convolution (floor division, as ONNX and PyTorch compute it).
pub(crate) fn conv_out(inp: usize, k: usize, s: usize, pad: usize) -> usize {
    (inp + 2 * pad).saturating_sub(k) / s + 1
}

/// A float tensor value-info with a batch dimension that is a symbol (`batch`) or a number.
pub(crate) fn value_info(name: &str, batch: Option<usize>, dims: &[usize]) -> ValueInfoProto {
    let all: Vec<Option<usize>> = std::iter::once(batch)
        .chain(dims.iter().map(|&d| Some(d)))
        .collect();
    nnu_onnx_proto::tensor_value_info(name, &all)
}

impl GraphBuilder {
    pub fn new(state_dict: StateDict, ndim: usize) -> Self {
        let weights = state_dict
            .into_entries()
            .into_iter()
            .enumerate()
            .map(|(i, (k, t))| (k, (i, t)))
            .collect();
        Self {
            weights,
            nodes: Vec::new(),
            initializers: Vec::new(),
            ndim,
        }
    }

    /// Removes `key` from the remaining tensors after checking its shape against `pattern`.
    pub(crate) fn take(&mut self, key: &str, pattern: &[Option<usize>]) -> Result<WeightTensor> {
        let Some((_, t)) = self.weights.remove(key) else {
            return Err(ExportError::MissingKey { key: key.into() });
        };
        let fits = t.shape.len() == pattern.len()
            && t.shape
                .iter()
                .zip(pattern)
                .all(|(&d, p)| p.is_none_or(|p| p == d) && d > 0);
        if !fits {
            return Err(ExportError::ShapeMismatch {
                key: key.into(),
                expected: pattern_string(pattern),
                found: t.shape,
            });
        }
        Ok(t)
    }

    /// Adds a tensor as an initializer under its state_dict key (raw little-endian f32).
    pub(crate) fn add_initializer(&mut self, key: &str, t: WeightTensor) {
        let mut raw = Vec::with_capacity(t.data.len() * 4);
        for v in &t.data {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        self.initializers.push(TensorProto {
            dims: t.shape.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Float as i32,
            name: key.into(),
            raw_data: raw,
            ..Default::default()
        });
    }

    /// The first tensor nobody consumed, in state_dict order, as an error.
    pub fn check_all_consumed(&self) -> Result<()> {
        match self.weights.iter().min_by_key(|(_, (i, _))| *i) {
            None => Ok(()),
            Some((key, _)) => Err(ExportError::UnexpectedKey {
                key: key.clone(),
                count: self.weights.len(),
            }),
        }
    }

    /// `ConvDropoutNormNonlin`: Conv (bias) -> InstanceNormalization -> LeakyRelu, with the
    /// tensors `{prefix}.conv.{weight,bias}` and `{prefix}.instnorm.{weight,bias}`.
    ///
    /// Padding is nnU-Net's `conv_pad_sizes` rule: 1 where the kernel is 3, else 0.
    pub fn conv_norm_lrelu(
        &mut self,
        prefix: &str,
        x: &Value,
        kernel: &[usize],
        stride: &[usize],
    ) -> Result<Value> {
        let wkey = format!("{prefix}.conv.weight");
        let mut pattern = vec![None, Some(x.channels)];
        pattern.extend(kernel.iter().map(|&k| Some(k)));
        let w = self.take(&wkey, &pattern)?;
        let out_ch = w.shape[0];
        let bkey = format!("{prefix}.conv.bias");
        let b = self.take(&bkey, &[Some(out_ch)])?;
        let skey = format!("{prefix}.instnorm.weight");
        let s = self.take(&skey, &[Some(out_ch)])?;
        let nbkey = format!("{prefix}.instnorm.bias");
        let nb = self.take(&nbkey, &[Some(out_ch)])?;
        self.add_initializer(&wkey, w);
        self.add_initializer(&bkey, b);
        self.add_initializer(&skey, s);
        self.add_initializer(&nbkey, nb);

        let pads1: Vec<usize> = kernel.iter().map(|&k| usize::from(k == 3)).collect();
        let pads: Vec<usize> = pads1.iter().chain(pads1.iter()).copied().collect();
        let spatial = (0..self.ndim)
            .map(|a| conv_out(x.spatial[a], kernel[a], stride[a], pads1[a]))
            .collect();

        let conv = format!("{prefix}.conv");
        self.nodes.push(node(
            "Conv",
            &conv,
            vec![x.name.clone(), wkey, bkey],
            vec![
                ints_attr("dilations", &vec![1; self.ndim]),
                int_attr("group", 1),
                ints_attr("kernel_shape", kernel),
                ints_attr("pads", &pads),
                ints_attr("strides", stride),
            ],
        ));
        let norm = format!("{prefix}.instnorm");
        self.nodes.push(node(
            "InstanceNormalization",
            &norm,
            vec![conv, skey, nbkey],
            vec![float_attr("epsilon", INSTANCE_NORM_EPS)],
        ));
        let act = format!("{prefix}.lrelu");
        self.nodes.push(node(
            "LeakyRelu",
            &act,
            vec![norm],
            vec![float_attr("alpha", LEAKY_RELU_SLOPE)],
        ));
        Ok(Value {
            name: act,
            channels: out_ch,
            spatial,
        })
    }

    /// `StackedConvLayers(num_convs)` under `{prefix}.blocks.{i}`. Like the PyTorch class, a stack
    /// always has its first block, so `num_convs = 0` still yields one block; only that first
    /// block gets `first_stride`.
    pub fn stacked_convs(
        &mut self,
        prefix: &str,
        x: &Value,
        num_convs: usize,
        kernel: &[usize],
        first_stride: Option<&[usize]>,
    ) -> Result<Value> {
        let ones = vec![1; self.ndim];
        let mut v = x.clone();
        for i in 0..num_convs.max(1) {
            let stride = if i == 0 {
                first_stride.unwrap_or(&ones)
            } else {
                &ones
            };
            v = self.conv_norm_lrelu(&format!("{prefix}.blocks.{i}"), &v, kernel, stride)?;
        }
        Ok(v)
    }

    /// `ConvTranspose{2,3}d(kernel = stride = pool kernel, bias=False)` with tensor `{key}.weight`
    /// (`[in, out, k...]`).
    pub fn transposed_conv(&mut self, key: &str, x: &Value, pool: &[usize]) -> Result<Value> {
        let wkey = format!("{key}.weight");
        let mut pattern = vec![Some(x.channels), None];
        pattern.extend(pool.iter().map(|&k| Some(k)));
        let w = self.take(&wkey, &pattern)?;
        let out_ch = w.shape[1];
        self.add_initializer(&wkey, w);
        let name = key.to_string();
        self.nodes.push(node(
            "ConvTranspose",
            &name,
            vec![x.name.clone(), wkey],
            vec![
                ints_attr("dilations", &vec![1; self.ndim]),
                int_attr("group", 1),
                ints_attr("kernel_shape", pool),
                ints_attr("pads", &vec![0; 2 * self.ndim]),
                ints_attr("strides", pool),
            ],
        ));
        let spatial = x.spatial.iter().zip(pool).map(|(&s, &p)| s * p).collect();
        Ok(Value {
            name,
            channels: out_ch,
            spatial,
        })
    }

    /// `torch.cat(inputs, 1)`, named `name`.
    pub fn concat(&mut self, name: &str, inputs: &[&Value]) -> Result<Value> {
        let spatial = inputs[0].spatial.clone();
        if let Some(bad) = inputs.iter().find(|v| v.spatial != spatial) {
            return Err(ExportError::InvalidSpec(format!(
                "cannot concatenate `{}` {:?} with `{}` {:?}: the pool kernels do not fit the patch",
                inputs[0].name, spatial, bad.name, bad.spatial
            )));
        }
        self.nodes.push(node(
            "Concat",
            name,
            inputs.iter().map(|v| v.name.clone()).collect(),
            vec![int_attr("axis", 1)],
        ));
        Ok(Value {
            name: name.into(),
            channels: inputs.iter().map(|v| v.channels).sum(),
            spatial,
        })
    }

    /// A segmentation head `conv_op(ch, num_classes, 1, 1, 0, 1, 1, bias=False)` with tensor
    /// `{key}.weight`. With `output = None` the weight is only validated (an unused head is left
    /// out of the graph, as `torch.onnx.export` would do without deep supervision).
    /// `classes`, when known from an earlier head, must match this head's output channels.
    pub fn head(
        &mut self,
        key: &str,
        x: &Value,
        classes: Option<usize>,
        output: Option<&str>,
    ) -> Result<Value> {
        let wkey = format!("{key}.weight");
        let mut pattern = vec![classes, Some(x.channels)];
        pattern.extend(std::iter::repeat_n(Some(1), self.ndim));
        let w = self.take(&wkey, &pattern)?;
        let classes = w.shape[0];
        let name = output.unwrap_or(key).to_string();
        if output.is_some() {
            self.add_initializer(&wkey, w);
            self.nodes.push(node(
                "Conv",
                &name,
                vec![x.name.clone(), wkey],
                vec![
                    ints_attr("dilations", &vec![1; self.ndim]),
                    int_attr("group", 1),
                    ints_attr("kernel_shape", &vec![1; self.ndim]),
                    ints_attr("pads", &vec![0; 2 * self.ndim]),
                    ints_attr("strides", &vec![1; self.ndim]),
                ],
            ));
        }
        Ok(Value {
            name,
            channels: classes,
            spatial: x.spatial.clone(),
        })
    }

    /// Number of spatial axes of the graph.
    pub fn ndim(&self) -> usize {
        self.ndim
    }

    /// Removes every remaining tensor whose key `alias` accepts, returning how many went. nnunetv2
    /// state_dicts hold each parameter of `ConvDropoutNormReLU` twice (`.conv` and `.all_modules.0`) and
    /// the encoder a second time under `decoder.encoder.`; the aliases are dropped before building.
    pub fn drop_aliases(&mut self, alias: impl Fn(&str) -> bool) -> usize {
        let before = self.weights.len();
        self.weights.retain(|k, _| !alias(k));
        before - self.weights.len()
    }

    /// Number of input channels the first encoder conv expects, read from its weight.
    pub fn peek_in_channels(&self, key: &str) -> Result<usize> {
        match self.weights.get(key) {
            Some((_, t)) if t.shape.len() == self.ndim + 2 && t.shape[1] > 0 => Ok(t.shape[1]),
            Some((_, t)) => Err(ExportError::ShapeMismatch {
                key: key.into(),
                expected: format!("[?, ?{}]", ", ?".repeat(self.ndim)),
                found: t.shape.clone(),
            }),
            None => Err(ExportError::MissingKey { key: key.into() }),
        }
    }
}
