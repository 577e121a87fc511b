//! An ordered name -> tensor map, the PyTorch `state_dict` in plain Rust.

use std::collections::HashMap;

use crate::error::{ExportError, Result};

/// One f32 tensor of a state_dict, row-major (C order) as PyTorch stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightTensor {
    /// Extents, outermost first (a Conv3d weight is `[out, in, kz, ky, kx]`).
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values in row-major order.
    pub data: Vec<f32>,
}

impl WeightTensor {
    /// Number of elements the shape describes.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The parameters of a network keyed by their PyTorch module path
/// (`conv_blocks_context.0.blocks.0.conv.weight`, ...), in insertion order.
///
/// Keys are unique; [`StateDict::insert`] checks that and that each tensor's data length fits its
/// shape, so every `StateDict` is well formed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict {
    entries: Vec<(String, WeightTensor)>,
    index: HashMap<String, usize>,
}

impl StateDict {
    /// An empty state_dict.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `name -> (shape, data)`.
    ///
    /// Fails with [`ExportError::DuplicateKey`] if `name` is present and with
    /// [`ExportError::DataLength`] if `data.len()` is not the product of `shape`.
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        shape: Vec<usize>,
        data: Vec<f32>,
    ) -> Result<()> {
        let name = name.into();
        let numel: usize = shape.iter().product();
        if data.len() != numel {
            return Err(ExportError::DataLength {
                key: name,
                shape,
                len: data.len(),
            });
        }
        if self.index.contains_key(&name) {
            return Err(ExportError::DuplicateKey { key: name });
        }
        self.index.insert(name.clone(), self.entries.len());
        self.entries.push((name, WeightTensor { shape, data }));
        Ok(())
    }

    /// The tensor stored under `name`.
    pub fn get(&self, name: &str) -> Option<&WeightTensor> {
        self.index.get(name).map(|&i| &self.entries[i].1)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total number of scalar parameters.
    pub fn num_parameters(&self) -> usize {
        self.entries.iter().map(|(_, t)| t.numel()).sum()
    }

    /// `(name, tensor)` pairs in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &WeightTensor)> {
        self.entries.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// Consumes the map, yielding `(name, tensor)` pairs in insertion order.
    pub fn into_entries(self) -> Vec<(String, WeightTensor)> {
        self.entries
    }
}

/// Builds a state_dict from `(name, shape, data)` triples, failing like [`StateDict::insert`].
impl TryFrom<Vec<(String, Vec<usize>, Vec<f32>)>> for StateDict {
    type Error = ExportError;

    fn try_from(items: Vec<(String, Vec<usize>, Vec<f32>)>) -> Result<Self> {
        let mut sd = StateDict::new();
        for (name, shape, data) in items {
            sd.insert(name, shape, data)?;
        }
        Ok(sd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_rejects_duplicates_and_bad_lengths() {
        let mut sd = StateDict::new();
        sd.insert("a.weight", vec![2, 3], vec![0.0; 6]).unwrap();
        assert!(matches!(
            sd.insert("a.weight", vec![1], vec![0.0]),
            Err(ExportError::DuplicateKey { key }) if key == "a.weight"
        ));
        assert!(matches!(
            sd.insert("b.weight", vec![2, 2], vec![0.0; 3]),
            Err(ExportError::DataLength { len: 3, .. })
        ));
        assert_eq!(sd.len(), 1);
        assert_eq!(sd.num_parameters(), 6);
        assert_eq!(
            sd.get("a.weight").map(|t| t.shape.clone()),
            Some(vec![2, 3])
        );
    }
}
