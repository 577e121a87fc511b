//! The forward passes of `Generic_UNetPlusPlus` and `Generic_UNet`, node by node.
//!
//! Both follow the modules as the V2 trainers construct them: convolutional pooling (the first
//! conv of encoder stage `d > 0` has stride `pool_op_kernel_sizes[d - 1]`), convolutional
//! upsampling (`ConvTranspose` with kernel = stride = the pool kernel of the level below, no
//! bias), the bottleneck as two stacks (`conv_per_stage - 1` convs, then one), decoder nodes as
//! two stacks (`conv_per_stage - 1`, then one), identity `final_nonlin` (logits out), and
//! `upscale_logits = False`.
//!
//! One quirk is reproduced on purpose: the decoder at resolution level `l` uses
//! `conv_kernel_sizes[l + 1]` (the constructors index `conv_kernel_sizes[-(u + 1)]`), not the
//! encoder's `conv_kernel_sizes[l]`.

use crate::error::Result;
use crate::graph::{GraphBuilder, Value};
use crate::spec::NetworkSpec;

/// A graph output: its position in the module's deep-supervision tuple (0 = the final head,
/// exported as `class`) and the value.
pub(crate) struct HeadOutput {
    pub position: usize,
    pub value: Value,
}

/// ONNX output name for deep-supervision position `pos` (`class`, `head_1`, `head_2`, ...).
pub(crate) fn output_name(pos: usize) -> String {
    if pos == 0 {
        "class".to_string()
    } else {
        format!("head_{pos}")
    }
}

/// Emits one head; records the class count from the first head and checks the rest against it.
fn emit_head(
    g: &mut GraphBuilder,
    key: &str,
    x: &Value,
    pos: usize,
    deep_supervision: bool,
    classes: &mut Option<usize>,
    outputs: &mut Vec<HeadOutput>,
) -> Result<()> {
    let name = output_name(pos);
    let emit = pos == 0 || deep_supervision;
    let v = g.head(key, x, *classes, emit.then_some(name.as_str()))?;
    *classes = Some(v.channels);
    if emit {
        outputs.push(HeadOutput {
            position: pos,
            value: v,
        });
    }
    Ok(())
}

/// The encoder shared by both families: `conv_blocks_context.0..num_pool` and the bottleneck
/// `conv_blocks_context.{num_pool}.{0,1}`. Returns the outputs of all levels, bottleneck last.
fn encoder(g: &mut GraphBuilder, spec: &NetworkSpec, input: &Value) -> Result<Vec<Value>> {
    let np = spec.num_pool();
    let cps = spec.conv_per_stage;
    let mut levels: Vec<Value> = Vec::with_capacity(np + 1);
    for d in 0..np {
        let x = levels.last().unwrap_or(input).clone();
        let stride = (d > 0).then(|| spec.pool_op_kernel_sizes[d - 1].as_slice());
        let v = g.stacked_convs(
            &format!("conv_blocks_context.{d}"),
            &x,
            cps,
            &spec.conv_kernel_sizes[d],
            stride,
        )?;
        levels.push(v);
    }
    let k = &spec.conv_kernel_sizes[np];
    let a = g.stacked_convs(
        &format!("conv_blocks_context.{np}.0"),
        &levels[np - 1],
        cps - 1,
        k,
        Some(&spec.pool_op_kernel_sizes[np - 1]),
    )?;
    let b = g.stacked_convs(&format!("conv_blocks_context.{np}.1"), &a, 1, k, None)?;
    levels.push(b);
    Ok(levels)
}

/// One decoder node: `{prefix}.0` (`conv_per_stage - 1` convs) then `{prefix}.1` (one conv).
fn decoder_node(
    g: &mut GraphBuilder,
    spec: &NetworkSpec,
    prefix: &str,
    x: &Value,
    kernel: &[usize],
) -> Result<Value> {
    let a = g.stacked_convs(
        &format!("{prefix}.0"),
        x,
        spec.conv_per_stage - 1,
        kernel,
        None,
    )?;
    g.stacked_convs(&format!("{prefix}.1"), &a, 1, kernel, None)
}

/// `Generic_UNetPlusPlus.forward` (UNetPlusPlus e145ba6), five levels.
///
/// Node `x_{i,j}` (level `i`, column `j >= 1`) is `loc{z}[j-1]` with `z = 4 - i - (j - 1)`,
/// applied to `cat([x_{i,0}, ..., x_{i,j-1}, up{z}[j-1](x_{i+1,j-1})], 1)`: the same-level
/// predecessors first, the upsampled node last. Heads: `x_{0,s}` goes through
/// `seg_outputs[5 - s]`; the deep-supervision tuple is `(seg_outputs.0(x_{0,5}), seg_outputs.1(x_{0,4}),
/// ..., seg_outputs.4(x_{0,1}))`.
pub(crate) fn unet_plus_plus(
    g: &mut GraphBuilder,
    spec: &NetworkSpec,
    input: &Value,
    deep_supervision: bool,
) -> Result<Vec<HeadOutput>> {
    const LEVELS: usize = 5;
    let enc = encoder(g, spec, input)?;
    // grid[i][j] = x_{i,j}
    let mut grid: Vec<Vec<Value>> = enc.into_iter().map(|v| vec![v]).collect();
    let mut outputs = Vec::new();
    let mut classes = None;
    for s in 1..=LEVELS {
        let z = LEVELS - s;
        for j in 1..=s {
            let i = s - j;
            let k = j - 1;
            let up = g.transposed_conv(
                &format!("up{z}.{k}"),
                &grid[i + 1][j - 1],
                &spec.pool_op_kernel_sizes[i],
            )?;
            let mut parts: Vec<&Value> = grid[i].iter().collect();
            parts.push(&up);
            let cat = g.concat(&format!("loc{z}.{k}.concat"), &parts)?;
            let v = decoder_node(
                g,
                spec,
                &format!("loc{z}.{k}"),
                &cat,
                &spec.conv_kernel_sizes[i + 1],
            )?;
            grid[i].push(v);
        }
        let pos = LEVELS - s;
        let x0 = grid[0][s].clone();
        emit_head(
            g,
            &format!("seg_outputs.{pos}"),
            &x0,
            pos,
            deep_supervision,
            &mut classes,
            &mut outputs,
        )?;
    }
    Ok(outputs)
}

/// `Generic_UNet.forward` (nnU-Net 1.7.1), `num_pool` levels.
///
/// Decoder step `u` upsamples with `tu[u]` and concatenates `(upsampled, skip)` in that order
/// (the opposite of UNet++), runs `conv_blocks_localization[u]` and `seg_outputs[u]`. The
/// deep-supervision tuple is `(seg_outputs[-1], seg_outputs[-2], ..., seg_outputs[0])`.
pub(crate) fn generic_unet(
    g: &mut GraphBuilder,
    spec: &NetworkSpec,
    input: &Value,
    deep_supervision: bool,
) -> Result<Vec<HeadOutput>> {
    let np = spec.num_pool();
    let enc = encoder(g, spec, input)?;
    let mut x = enc[np].clone();
    let mut outputs = Vec::new();
    let mut classes = None;
    for u in 0..np {
        let level = np - 1 - u;
        let up = g.transposed_conv(&format!("tu.{u}"), &x, &spec.pool_op_kernel_sizes[level])?;
        let cat = g.concat(
            &format!("conv_blocks_localization.{u}.concat"),
            &[&up, &enc[level]],
        )?;
        x = decoder_node(
            g,
            spec,
            &format!("conv_blocks_localization.{u}"),
            &cat,
            &spec.conv_kernel_sizes[level + 1],
        )?;
        let pos = np - 1 - u;
        emit_head(
            g,
            &format!("seg_outputs.{u}"),
            &x,
            pos,
            deep_supervision,
            &mut classes,
            &mut outputs,
        )?;
    }
    Ok(outputs)
}
