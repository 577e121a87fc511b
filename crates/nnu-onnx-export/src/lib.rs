//! Build ONNX graphs of `Generic_UNetPlusPlus` and nnU-Net's `Generic_UNet` from a state_dict,
//! without Python.
//!
//! This replaces the recipe's `torch.onnx.export` step (`3d_nested_unet_pth2onnx.py`). The graph
//! follows the PyTorch forward passes exactly (see [`Family`] and the topology notes on
//! [`export_model`]); initializer names are the state_dict keys, one to one, and channel counts
//! are read from the tensor shapes, so any base or maximum feature count exports. Kernel sizes,
//! strides and the number of levels come from the plans ([`NetworkSpec`]). Missing, extra or
//! misshapen tensors are errors that name the key.
//!
//! Ops used: `Conv` (with bias), `InstanceNormalization` (eps 1e-5), `LeakyRelu` (alpha 0.01),
//! `ConvTranspose` (kernel = stride = pool kernel, no bias), `Concat`, and 1x1(x1) `Conv` heads
//! without bias. Outputs are logits (the trainers' `final_nonlin` is the identity; softmax is
//! applied later by the sliding-window code). Input `image` is `(N, C, patch...)`; the first
//! output `class` is the final head, followed by `head_1, head_2, ...` with deep supervision.
//!
//! ```
//! use nnu_onnx_export::{export_model, synthetic_state_dict, ExportOptions, Family, NetworkSpec,
//!     SyntheticConfig};
//!
//! // A small 2D Generic_UNet with seeded He-initialised weights.
//! let spec = NetworkSpec {
//!     family: Family::Unet,
//!     patch_size: vec![16, 16],
//!     pool_op_kernel_sizes: vec![vec![2, 2]; 2],
//!     conv_kernel_sizes: vec![vec![3, 3]; 3],
//!     conv_per_stage: 2,
//! };
//! let cfg = SyntheticConfig { base_num_features: 4, max_num_features: 16, ..Default::default() };
//! let weights = synthetic_state_dict(&spec, &cfg)?;
//! let options = ExportOptions { deep_supervision: true, ..Default::default() };
//! let exported = export_model(&spec, weights, &options)?;
//! assert_eq!(exported.outputs[0].name, "class");
//! assert_eq!(exported.outputs[0].shape, vec![3, 16, 16]);
//! assert_eq!(exported.outputs[1].shape, vec![3, 8, 8]);
//! let bytes = exported.to_bytes(); // a serialised ModelProto, ready for tract or onnxruntime
//! assert!(!bytes.is_empty());
//! # Ok::<(), nnu_onnx_export::ExportError>(())
//! ```
//!
//! What this crate deliberately does not do: read pickles or torch zips (that is
//! `nnu-artifacts`; [`from_artifacts`] glues the two), run the network, support non-default
//! module options (bilinear upsampling, max pooling, dropout at inference, `upscale_logits`,
//! heads with bias), or write external-data ONNX (models stay far below protobuf's 2 GiB).

#![warn(missing_docs)]

mod error;
pub mod from_artifacts;
mod graph;
mod spec;
mod state_dict;
mod synthetic;
mod topology;
pub mod v2;

use std::path::Path;

use nnu_onnx_proto::{GraphProto, Message, ModelProto, OperatorSetIdProto};

pub use error::{ExportError, Result};
/// The protobuf types the model is made of (the `nnu-onnx-proto` crate).
pub use nnu_onnx_proto as pb;
pub use spec::{BatchDim, ExportOptions, Family, NetworkSpec};
pub use state_dict::{StateDict, WeightTensor};
pub use synthetic::{synthetic_shapes, synthetic_state_dict, SyntheticConfig};

use graph::{value_info, GraphBuilder, Value};

/// Name of the graph input.
pub const INPUT_NAME: &str = "image";
/// Name of the final head's output.
pub const OUTPUT_NAME: &str = "class";

/// One graph output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputInfo {
    /// `class`, `head_1`, ...
    pub name: String,
    /// `(classes, spatial...)`: the shape without the batch axis.
    pub shape: Vec<usize>,
}

/// A built model and what was learned about the network while building it.
#[derive(Debug, Clone)]
pub struct ExportedModel {
    /// The ONNX model.
    pub model: ModelProto,
    /// Input channels (modalities), from the first conv's weight.
    pub input_channels: usize,
    /// Outputs per head, background included, from the heads' weights.
    pub num_classes: usize,
    /// Graph outputs in order: `class` first.
    pub outputs: Vec<OutputInfo>,
    /// Scalar parameters in the graph's initializers.
    pub num_parameters: usize,
}

impl ExportedModel {
    /// The serialised `ModelProto` (the `.onnx` file's bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.model.encode_to_vec()
    }

    /// Writes the model to `path` atomically and durably ([`nnu_fsio::write_atomic`]).
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes())
    }
}

/// Writes `bytes` to `path` atomically and durably ([`nnu_fsio::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    nnu_fsio::write_atomic(path, bytes).map_err(|e| {
        let (path, source) = e.into_parts();
        ExportError::Io { path, source }
    })
}

/// Builds the ONNX model of `spec.family` with the tensors of `state_dict`.
///
/// Every tensor the module registers must be present with a fitting shape (first dimension free
/// where it is a channel count the next layer checks), and no other tensor may be present.
/// Without deep supervision the extra heads' weights are still checked, then left out.
///
/// Topology (both families, as the V2 trainers build them): convolutional pooling (stride
/// `pool_op_kernel_sizes[d - 1]` on the first conv of stage `d`), padding 1 where a kernel is 3
/// and 0 otherwise, transposed-conv upsampling, decoder convs of level `l` with
/// `conv_kernel_sizes[l + 1]` (the modules' `[-(u + 1)]` indexing). UNet++ concatenates
/// `[x_{i,0}, ..., x_{i,j-1}, up(x_{i+1,j-1})]`; Generic_UNet concatenates `[up, skip]`.
pub fn export_model(
    spec: &NetworkSpec,
    state_dict: StateDict,
    options: &ExportOptions,
) -> Result<ExportedModel> {
    spec.validate()?;
    let mut g = GraphBuilder::new(state_dict, spec.ndim());
    let input_channels = g.peek_in_channels("conv_blocks_context.0.blocks.0.conv.weight")?;
    let input = Value {
        name: INPUT_NAME.into(),
        channels: input_channels,
        spatial: spec.patch_size.clone(),
    };
    let heads = match spec.family {
        Family::UnetPlusPlus => {
            topology::unet_plus_plus(&mut g, spec, &input, options.deep_supervision)?
        }
        Family::Unet => topology::generic_unet(&mut g, spec, &input, options.deep_supervision)?,
    };
    g.check_all_consumed()?;
    assemble(
        g,
        heads,
        input_channels,
        &spec.patch_size,
        options,
        spec.family.module_name(),
        &format!(
            "{} (nnU-Net v1) exported from a state_dict; outputs are logits",
            spec.family.module_name()
        ),
    )
}

/// Wraps a built graph into a model: heads sorted by deep-supervision position (`class` first), input and
/// output value infos with the batch dimension of `options`, opset and IR version.
pub(crate) fn assemble(
    mut g: GraphBuilder,
    mut heads: Vec<topology::HeadOutput>,
    input_channels: usize,
    patch_size: &[usize],
    options: &ExportOptions,
    graph_name: &str,
    doc: &str,
) -> Result<ExportedModel> {
    let ir_version = spec::ir_version_for_opset(options.opset)?;
    let batch = match options.batch {
        BatchDim::Dynamic => None,
        BatchDim::Fixed(0) => return Err(ExportError::InvalidSpec("batch size 0".into())),
        BatchDim::Fixed(n) => Some(n),
    };
    heads.sort_by_key(|h| h.position);
    let num_classes = heads.first().map_or(0, |h| h.value.channels);
    let outputs: Vec<OutputInfo> = heads
        .iter()
        .map(|h| {
            let mut shape = vec![h.value.channels];
            shape.extend_from_slice(&h.value.spatial);
            OutputInfo {
                name: h.value.name.clone(),
                shape,
            }
        })
        .collect();
    let num_parameters = g
        .initializers
        .iter()
        .map(|t| t.dims.iter().product::<i64>() as usize)
        .sum();

    let mut input_dims = vec![input_channels];
    input_dims.extend_from_slice(patch_size);
    let graph = GraphProto {
        name: graph_name.into(),
        node: std::mem::take(&mut g.nodes),
        initializer: std::mem::take(&mut g.initializers),
        input: vec![value_info(INPUT_NAME, batch, &input_dims)],
        output: outputs
            .iter()
            .map(|o| value_info(&o.name, batch, &o.shape))
            .collect(),
        ..Default::default()
    };
    let model = ModelProto {
        ir_version,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: options.opset,
        }],
        producer_name: "nnu-onnx-export".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: doc.into(),
        graph: Some(graph),
        ..Default::default()
    };
    Ok(ExportedModel {
        model,
        input_channels,
        num_classes,
        outputs,
        num_parameters,
    })
}
