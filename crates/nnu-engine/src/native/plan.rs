//! Memory plan: which buffer each tensor lives in.
//!
//! A tensor lives from the step that creates it (the input: from before the first step) to the last step
//! that reads it (the network output: to the end). Two tensors may share a buffer when their lifetimes do
//! not overlap; a tensor is never written into a buffer that a tensor read by the same step holds. The
//! assignment is greedy by size: tensors from the largest down, each into the first buffer (in creation
//! order, so the largest first) whose tensors do not overlap it, else into a new buffer of its size. A
//! buffer is never smaller than a tensor put in it, since larger tensors are placed first. The buffers are
//! allocated once per model and every pass (and every sample of a batch) reuses them.

use super::import::{ImportedModel, TensorShape};
use super::kernels::LANES;

/// f32 elements a tensor occupies in the channel-blocked layout.
pub(crate) fn elements(shape: &TensorShape) -> usize {
    shape.channels.div_ceil(LANES) * LANES * shape.dims.iter().product::<usize>()
}

/// Buffers and the tensor-to-buffer map.
#[derive(Debug, Clone)]
pub(crate) struct MemoryPlan {
    /// Buffer of each tensor.
    pub slot_of: Vec<usize>,
    /// f32 elements of each buffer.
    pub slot_elements: Vec<usize>,
}

impl MemoryPlan {
    /// Bytes of all buffers.
    pub(crate) fn bytes(&self) -> usize {
        self.slot_elements.iter().sum::<usize>() * std::mem::size_of::<f32>()
    }
}

/// Plans the buffers of `model`.
pub(crate) fn plan(model: &ImportedModel) -> MemoryPlan {
    let n = model.tensors.len();
    let steps = model.steps.len();
    // Lifetimes in half-steps: created at step i -> 2i + 1, last read at step j -> 2j + 1 (the input is
    // created at 0, the output lives to 2 * steps + 1). A tensor created by step i and one last read by
    // step i overlap, so a step never writes into a buffer it reads.
    let mut start: Vec<Option<usize>> = vec![None; n];
    let mut end: Vec<usize> = vec![0; n];
    start[model.input] = Some(0);
    for (i, step) in model.steps.iter().enumerate() {
        if let Some(t) = step.creates() {
            start[t] = Some(2 * i + 1);
            end[t] = end[t].max(2 * i + 1);
        }
        for t in step.reads() {
            end[t] = end[t].max(2 * i + 1);
        }
    }
    end[model.output] = 2 * steps + 1;
    end[model.input] = end[model.input].max(1);
    let mut order: Vec<usize> = (0..n).filter(|&t| start[t].is_some()).collect();
    order.sort_by_key(|&t| (std::cmp::Reverse(elements(&model.tensors[t])), start[t]));
    let mut slot_of = vec![usize::MAX; n];
    let mut slot_elements: Vec<usize> = Vec::new();
    let mut slot_lives: Vec<Vec<(usize, usize)>> = Vec::new();
    for t in order {
        let (s0, e0) = (start[t].unwrap_or(0), end[t]);
        let free = slot_lives
            .iter()
            .position(|lives| lives.iter().all(|&(s, e)| e0 < s || e < s0));
        let slot = match free {
            Some(k) => k,
            None => {
                slot_elements.push(elements(&model.tensors[t]));
                slot_lives.push(Vec::new());
                slot_elements.len() - 1
            }
        };
        slot_lives[slot].push((s0, e0));
        slot_of[t] = slot;
    }
    MemoryPlan {
        slot_of,
        slot_elements,
    }
}
