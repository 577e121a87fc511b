//! Memory plan: which buffer each tensor lives in.
//!
//! Tensors are created in step order; a tensor's buffer returns to the free list after the last step
//! that reads it (the network output stays to the end). A new tensor takes the smallest free buffer
//! that holds it, else the largest free one (grown), else a new buffer, so the buffers are allocated
//! once per model and every pass (and every sample of a batch) reuses them.

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
    // Last step reading each tensor; the output lives past the end.
    let mut last: Vec<Option<usize>> = vec![None; n];
    for (i, step) in model.steps.iter().enumerate() {
        for t in step.reads() {
            last[t] = Some(i);
        }
    }
    last[model.output] = Some(steps);

    let mut slot_of = vec![usize::MAX; n];
    let mut slot_elements: Vec<usize> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    slot_of[model.input] = assign(
        elements(&model.tensors[model.input]),
        &mut free,
        &mut slot_elements,
    );
    if last[model.input].is_none() {
        // Only possible when the output is a copy of the input, which import does not produce.
        last[model.input] = Some(0);
    }
    for (i, step) in model.steps.iter().enumerate() {
        if let Some(t) = step.creates() {
            slot_of[t] = assign(elements(&model.tensors[t]), &mut free, &mut slot_elements);
            if last[t].is_none() {
                last[t] = Some(i);
            }
        }
        let mut done: Vec<usize> = step.reads();
        done.extend(step.creates());
        done.sort_unstable();
        done.dedup();
        for t in done {
            if last[t] == Some(i) {
                free.push(slot_of[t]);
            }
        }
    }
    MemoryPlan {
        slot_of,
        slot_elements,
    }
}

/// Picks a buffer for a tensor of `need` elements (see the module doc) and grows it if needed.
fn assign(need: usize, free: &mut Vec<usize>, slot_elements: &mut Vec<usize>) -> usize {
    let best = free
        .iter()
        .enumerate()
        .filter(|(_, &s)| slot_elements[s] >= need)
        .min_by_key(|(_, &s)| slot_elements[s])
        .map(|(i, _)| i)
        .or_else(|| {
            free.iter()
                .enumerate()
                .max_by_key(|(_, &s)| slot_elements[s])
                .map(|(i, _)| i)
        });
    let slot = match best {
        Some(i) => free.swap_remove(i),
        None => {
            slot_elements.push(0);
            slot_elements.len() - 1
        }
    };
    slot_elements[slot] = slot_elements[slot].max(need);
    slot
}
