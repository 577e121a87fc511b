//! nnunetv2 networks: `dynamic_network_architectures`' `PlainConvUNet` and `ResidualEncoderUNet`
//! (dynamic-network-architectures 0.4.x, as nnunetv2 2.8.1 builds them with `get_network_from_plans`).
//!
//! The graph follows the modules' forward passes:
//!
//! - `ConvDropoutNormReLU`: `Conv` (padding `(k - 1) / 2` per axis, bias when `conv_bias`),
//!   `InstanceNormalization` (affine, the plans' eps), then LeakyReLU / ReLU (none where the module has
//!   no non-linearity).
//! - `PlainConvEncoder`: stage `s` is `n_conv_per_stage[s]` of those, the first with stride
//!   `strides[s]`; every stage's output is a skip.
//! - `ResidualEncoder`: a stem (one conv block to `stem_channels`), then stage `s` is
//!   `n_blocks_per_stage[s]` `BasicBlockD`s: `conv1` (conv, norm, non-linearity; stride on the first block),
//!   `conv2` (conv, norm), plus the skip, then the non-linearity. The skip is the identity, or
//!   `AvgPool(stride)` and/or a 1x1 conv without bias + norm. The average pooling (kernel = stride) is
//!   exported as a `Conv` with kernel and stride equal to the pooling's, folded into the 1x1 projection
//!   where there is one (both are linear, so `W / prod(stride)` over the pooling window is the same map,
//!   up to float rounding); without a projection the conv's weight is `I / prod(stride)`. This keeps the
//!   graph within Conv, InstanceNormalization, LeakyRelu/Relu, ConvTranspose, Concat and Add.
//! - `UNetDecoder`: step `u` upsamples with `ConvTranspose` (kernel = stride = the encoder stride of the
//!   level below, bias when `conv_bias`), concatenates `(upsampled, skip)`, runs
//!   `n_conv_per_stage_decoder[u]` conv blocks with the skip level's kernel, and `seg_layers[u]` (1x1 conv
//!   with bias) gives that resolution's logits. Without deep supervision only the last `seg_layers`
//!   is in the graph.
//!
//! State_dict aliases are dropped first: each `ConvDropoutNormReLU` registers its conv and norm both by
//! name and inside `all_modules`, and the decoder holds the encoder, so `*.all_modules.*` and
//! `decoder.encoder.*` repeat other keys.

use nnu_artifacts::v2::{NetworkClass, Nonlin, UNetArchitecture};

use crate::error::{ExportError, Result};
use crate::graph::{float_attr, int_attr, ints_attr, node, GraphBuilder, Value};
use crate::spec::ExportOptions;
use crate::state_dict::{StateDict, WeightTensor};
use crate::topology::{output_name, HeadOutput};
use crate::{assemble, ExportedModel, INPUT_NAME};

pub use nnu_artifacts::v2::is_alias_key;

struct V2Builder<'a> {
    g: GraphBuilder,
    arch: &'a UNetArchitecture,
}

impl V2Builder<'_> {
    fn conv(
        &mut self,
        prefix: &str,
        x: &Value,
        out_ch: Option<usize>,
        kernel: &[usize],
        stride: &[usize],
        bias: bool,
    ) -> Result<Value> {
        let wkey = format!("{prefix}.weight");
        let mut pattern = vec![out_ch, Some(x.channels)];
        pattern.extend(kernel.iter().map(|&k| Some(k)));
        let w = self.g.take(&wkey, &pattern)?;
        let out_ch = w.shape[0];
        self.g.add_initializer(&wkey, w);
        let mut inputs = vec![x.name.clone(), wkey];
        if bias {
            let bkey = format!("{prefix}.bias");
            let b = self.g.take(&bkey, &[Some(out_ch)])?;
            self.g.add_initializer(&bkey, b);
            inputs.push(bkey);
        }
        let pads1: Vec<usize> = kernel.iter().map(|&k| (k - 1) / 2).collect();
        self.conv_node(prefix, inputs, x, out_ch, kernel, stride, &pads1)
    }

    #[allow(clippy::too_many_arguments)]
    fn conv_node(
        &mut self,
        name: &str,
        inputs: Vec<String>,
        x: &Value,
        out_ch: usize,
        kernel: &[usize],
        stride: &[usize],
        pads1: &[usize],
    ) -> Result<Value> {
        let nd = self.g.ndim();
        let pads: Vec<usize> = pads1.iter().chain(pads1).copied().collect();
        let spatial: Vec<usize> = (0..nd)
            .map(|a| crate::graph::conv_out(x.spatial[a], kernel[a], stride[a], pads1[a]))
            .collect();
        if spatial.contains(&0) || x.spatial.iter().zip(kernel).any(|(&s, &k)| s + 1 < k) {
            return Err(ExportError::InvalidSpec(format!(
                "`{name}`: input {:?} too small for kernel {kernel:?} stride {stride:?}",
                x.spatial
            )));
        }
        self.g.nodes.push(node(
            "Conv",
            name,
            inputs,
            vec![
                ints_attr("dilations", &vec![1; nd]),
                int_attr("group", 1),
                ints_attr("kernel_shape", kernel),
                ints_attr("pads", &pads),
                ints_attr("strides", stride),
            ],
        ));
        Ok(Value {
            name: name.to_owned(),
            channels: out_ch,
            spatial,
        })
    }

    fn norm(&mut self, prefix: &str, x: &Value) -> Result<Value> {
        let skey = format!("{prefix}.weight");
        let bkey = format!("{prefix}.bias");
        let s = self.g.take(&skey, &[Some(x.channels)])?;
        let b = self.g.take(&bkey, &[Some(x.channels)])?;
        self.g.add_initializer(&skey, s);
        self.g.add_initializer(&bkey, b);
        self.g.nodes.push(node(
            "InstanceNormalization",
            prefix,
            vec![x.name.clone(), skey, bkey],
            vec![float_attr("epsilon", self.arch.norm_eps)],
        ));
        Ok(Value {
            name: prefix.to_owned(),
            ..x.clone()
        })
    }

    fn nonlin(&mut self, name: &str, x: &Value) -> Value {
        let n = match self.arch.nonlin {
            Nonlin::LeakyRelu(a) => node(
                "LeakyRelu",
                name,
                vec![x.name.clone()],
                vec![float_attr("alpha", a)],
            ),
            Nonlin::Relu => node("Relu", name, vec![x.name.clone()], vec![]),
        };
        self.g.nodes.push(n);
        Value {
            name: name.to_owned(),
            ..x.clone()
        }
    }

    /// `ConvDropoutNormReLU` under `prefix` (`.conv`, `.norm`), with or without its non-linearity.
    #[allow(clippy::too_many_arguments)]
    fn conv_block(
        &mut self,
        prefix: &str,
        x: &Value,
        out_ch: Option<usize>,
        kernel: &[usize],
        stride: &[usize],
        bias: bool,
        with_nonlin: bool,
    ) -> Result<Value> {
        let c = self.conv(&format!("{prefix}.conv"), x, out_ch, kernel, stride, bias)?;
        let n = self.norm(&format!("{prefix}.norm"), &c)?;
        Ok(if with_nonlin {
            self.nonlin(&format!("{prefix}.nonlin"), &n)
        } else {
            n
        })
    }

    /// `StackedConvBlocks(num_convs)` under `{prefix}.convs.{i}`; the first conv gets `stride`.
    fn stacked(
        &mut self,
        prefix: &str,
        x: &Value,
        num_convs: usize,
        out_ch: usize,
        kernel: &[usize],
        stride: &[usize],
    ) -> Result<Value> {
        let ones = vec![1; self.g.ndim()];
        let mut v = x.clone();
        for i in 0..num_convs {
            let s = if i == 0 { stride } else { &ones };
            v = self.conv_block(
                &format!("{prefix}.convs.{i}"),
                &v,
                Some(out_ch),
                kernel,
                s,
                self.arch.conv_bias,
                true,
            )?;
        }
        Ok(v)
    }

    fn plain_encoder(&mut self, input: &Value) -> Result<Vec<Value>> {
        let a = self.arch;
        let mut skips: Vec<Value> = Vec::with_capacity(a.n_stages);
        for s in 0..a.n_stages {
            let x = skips.last().unwrap_or(input).clone();
            let v = self.stacked(
                &format!("encoder.stages.{s}.0"),
                &x,
                a.n_conv_per_stage[s],
                a.features_per_stage[s],
                &a.kernel_sizes[s],
                &a.strides[s],
            )?;
            skips.push(v);
        }
        Ok(skips)
    }

    fn residual_encoder(&mut self, input: &Value) -> Result<Vec<Value>> {
        let a = self.arch;
        let nd = self.g.ndim();
        let ones = vec![1; nd];
        let stem_ch = a.stem_channels.unwrap_or(a.features_per_stage[0]);
        let mut x = self.stacked("encoder.stem", input, 1, stem_ch, &a.kernel_sizes[0], &ones)?;
        let mut skips = Vec::with_capacity(a.n_stages);
        for s in 0..a.n_stages {
            for b in 0..a.n_conv_per_stage[s] {
                let p = format!("encoder.stages.{s}.blocks.{b}");
                let stride = if b == 0 {
                    a.strides[s].clone()
                } else {
                    ones.clone()
                };
                let out_ch = a.features_per_stage[s];
                let c1 = self.conv_block(
                    &format!("{p}.conv1"),
                    &x,
                    Some(out_ch),
                    &a.kernel_sizes[s],
                    &stride,
                    a.conv_bias,
                    true,
                )?;
                let c2 = self.conv_block(
                    &format!("{p}.conv2"),
                    &c1,
                    Some(out_ch),
                    &a.kernel_sizes[s],
                    &ones,
                    a.conv_bias,
                    false,
                )?;
                let residual = self.residual_skip(&p, &x, out_ch, &stride)?;
                let sum = format!("{p}.add");
                self.g.nodes.push(node(
                    "Add",
                    &sum,
                    vec![c2.name.clone(), residual.name.clone()],
                    vec![],
                ));
                let added = Value {
                    name: sum,
                    ..c2.clone()
                };
                if residual.spatial != c2.spatial {
                    return Err(ExportError::InvalidSpec(format!(
                        "`{p}`: residual {:?} and main path {:?} differ (the patch is not divisible by the strides)",
                        residual.spatial, c2.spatial
                    )));
                }
                x = self.nonlin(&format!("{p}.nonlin2"), &added);
            }
            skips.push(x.clone());
        }
        Ok(skips)
    }

    /// The skip of a `BasicBlockD` (see the module docs).
    fn residual_skip(
        &mut self,
        p: &str,
        x: &Value,
        out_ch: usize,
        stride: &[usize],
    ) -> Result<Value> {
        let nd = self.g.ndim();
        let has_stride = stride.iter().any(|&s| s != 1);
        let projection = x.channels != out_ch;
        if !has_stride && !projection {
            return Ok(x.clone());
        }
        let zeros = vec![0; nd];
        if !has_stride {
            return self.conv_block(
                &format!("{p}.skip.0"),
                x,
                Some(out_ch),
                &vec![1; nd],
                &ones(nd),
                false,
                false,
            );
        }
        let window: usize = stride.iter().product();
        let scale = 1.0 / window as f32;
        let in_ch = x.channels;
        // Weight of the pooling (and projection) as one conv with kernel = stride: [out, in, stride...].
        let (wkey, name, proj_prefix) = if projection {
            let k = format!("{p}.skip.1.conv.weight");
            let mut pattern = vec![Some(out_ch), Some(in_ch)];
            pattern.extend(std::iter::repeat_n(Some(1), nd));
            let w1 = self.g.take(&k, &pattern)?;
            let mut data = Vec::with_capacity(out_ch * in_ch * window);
            for &v in &w1.data {
                data.extend(std::iter::repeat_n(v * scale, window));
            }
            let mut shape = vec![out_ch, in_ch];
            shape.extend_from_slice(stride);
            self.g.add_initializer(&k, WeightTensor { shape, data });
            (k, format!("{p}.skip.1.conv"), Some(format!("{p}.skip.1")))
        } else {
            let k = format!("{p}.skip.0.avgpool_as_conv.weight");
            let mut data = vec![0.0f32; in_ch * in_ch * window];
            for c in 0..in_ch {
                let base = (c * in_ch + c) * window;
                data[base..base + window].fill(scale);
            }
            let mut shape = vec![in_ch, in_ch];
            shape.extend_from_slice(stride);
            self.g.add_initializer(&k, WeightTensor { shape, data });
            (k, format!("{p}.skip.0"), None)
        };
        let pooled = self.conv_node(
            &name,
            vec![x.name.clone(), wkey],
            x,
            out_ch,
            stride,
            stride,
            &zeros,
        )?;
        match proj_prefix {
            Some(pp) => self.norm(&format!("{pp}.norm"), &pooled),
            None => Ok(pooled),
        }
    }

    fn transposed(
        &mut self,
        key: &str,
        x: &Value,
        out_ch: usize,
        stride: &[usize],
    ) -> Result<Value> {
        let nd = self.g.ndim();
        let wkey = format!("{key}.weight");
        let mut pattern = vec![Some(x.channels), Some(out_ch)];
        pattern.extend(stride.iter().map(|&k| Some(k)));
        let w = self.g.take(&wkey, &pattern)?;
        self.g.add_initializer(&wkey, w);
        let mut inputs = vec![x.name.clone(), wkey];
        if self.arch.conv_bias {
            let bkey = format!("{key}.bias");
            let b = self.g.take(&bkey, &[Some(out_ch)])?;
            self.g.add_initializer(&bkey, b);
            inputs.push(bkey);
        }
        self.g.nodes.push(node(
            "ConvTranspose",
            key,
            inputs,
            vec![
                ints_attr("dilations", &vec![1; nd]),
                int_attr("group", 1),
                ints_attr("kernel_shape", stride),
                ints_attr("pads", &vec![0; 2 * nd]),
                ints_attr("strides", stride),
            ],
        ));
        Ok(Value {
            name: key.to_owned(),
            channels: out_ch,
            spatial: x.spatial.iter().zip(stride).map(|(&s, &k)| s * k).collect(),
        })
    }

    fn seg_layer(
        &mut self,
        u: usize,
        x: &Value,
        emit: Option<usize>,
    ) -> Result<Option<HeadOutput>> {
        let nd = self.g.ndim();
        let key = format!("decoder.seg_layers.{u}");
        match emit {
            Some(pos) => {
                let name = output_name(pos);
                let wkey = format!("{key}.weight");
                let bkey = format!("{key}.bias");
                let mut pattern = vec![None, Some(x.channels)];
                pattern.extend(std::iter::repeat_n(Some(1), nd));
                let w = self.g.take(&wkey, &pattern)?;
                let classes = w.shape[0];
                let b = self.g.take(&bkey, &[Some(classes)])?;
                self.g.add_initializer(&wkey, w);
                self.g.add_initializer(&bkey, b);
                let v = self.conv_node(
                    &name,
                    vec![x.name.clone(), wkey, bkey],
                    x,
                    classes,
                    &vec![1; nd],
                    &vec![1; nd],
                    &vec![0; nd],
                )?;
                Ok(Some(HeadOutput {
                    position: pos,
                    value: v,
                }))
            }
            None => {
                // Validate and drop (the module always builds every head).
                let mut pattern = vec![None, Some(x.channels)];
                pattern.extend(std::iter::repeat_n(Some(1), nd));
                let w = self.g.take(&format!("{key}.weight"), &pattern)?;
                self.g.take(&format!("{key}.bias"), &[Some(w.shape[0])])?;
                Ok(None)
            }
        }
    }

    fn decoder(&mut self, skips: &[Value], deep_supervision: bool) -> Result<Vec<HeadOutput>> {
        let a = self.arch;
        let n = a.n_stages;
        let mut x = skips[n - 1].clone();
        let mut heads = Vec::new();
        for u in 0..n - 1 {
            let level = n - 2 - u;
            let up = self.transposed(
                &format!("decoder.transpconvs.{u}"),
                &x,
                a.features_per_stage[level],
                &a.strides[level + 1],
            )?;
            let cat = self
                .g
                .concat(&format!("decoder.stages.{u}.concat"), &[&up, &skips[level]])?;
            x = self.stacked(
                &format!("decoder.stages.{u}"),
                &cat,
                a.n_conv_per_stage_decoder[u],
                a.features_per_stage[level],
                &a.kernel_sizes[level],
                &ones(self.g.ndim()),
            )?;
            let pos = n - 2 - u;
            let emit = (deep_supervision || pos == 0).then_some(pos);
            if let Some(h) = self.seg_layer(u, &x, emit)? {
                heads.push(h);
            }
        }
        Ok(heads)
    }
}

fn ones(nd: usize) -> Vec<usize> {
    vec![1; nd]
}

/// Builds the ONNX model of an nnunetv2 network: `arch` from the plans' `architecture`
/// ([`nnu_artifacts::v2::V2Configuration::network`]), `patch_size` the configuration's, `state_dict` the
/// checkpoint's `network_weights` (aliases allowed, see [`is_alias_key`]). Input `image` `(N, C, patch)`,
/// output `class` (the full-resolution logits), then `head_1, ...` with `options.deep_supervision`.
///
/// Every non-alias tensor must be consumed with a fitting shape; anything left over or missing is an error
/// naming the key.
pub fn export_v2(
    arch: &UNetArchitecture,
    patch_size: &[usize],
    state_dict: StateDict,
    options: &ExportOptions,
) -> Result<ExportedModel> {
    if patch_size.len() != arch.ndim {
        return Err(ExportError::InvalidSpec(format!(
            "patch {patch_size:?} has {} axes, the network {}",
            patch_size.len(),
            arch.ndim
        )));
    }
    let divisor: Vec<usize> = (0..arch.ndim)
        .map(|a| arch.strides.iter().map(|s| s[a]).product())
        .collect();
    if patch_size.iter().zip(&divisor).any(|(&p, &d)| p % d != 0) {
        return Err(ExportError::PatchNotDivisible {
            patch: patch_size.to_vec(),
            divisor,
        });
    }
    let mut g = GraphBuilder::new(state_dict, arch.ndim);
    g.drop_aliases(is_alias_key);
    let first = match arch.class {
        NetworkClass::PlainConvUNet => "encoder.stages.0.0.convs.0.conv.weight",
        NetworkClass::ResidualEncoderUNet => "encoder.stem.convs.0.conv.weight",
    };
    let input_channels = g.peek_in_channels(first)?;
    let input = Value {
        name: INPUT_NAME.into(),
        channels: input_channels,
        spatial: patch_size.to_vec(),
    };
    let mut b = V2Builder { g, arch };
    let skips = match arch.class {
        NetworkClass::PlainConvUNet => b.plain_encoder(&input)?,
        NetworkClass::ResidualEncoderUNet => b.residual_encoder(&input)?,
    };
    let heads = b.decoder(&skips, options.deep_supervision)?;
    b.g.check_all_consumed()?;
    assemble(
        b.g,
        heads,
        input_channels,
        patch_size,
        options,
        arch.class.name(),
        &format!(
            "{} (nnunetv2, dynamic_network_architectures) exported from network_weights; outputs are logits",
            arch.class.name()
        ),
    )
}
