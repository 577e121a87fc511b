//! What to build: the network family, its plans-derived hyper-parameters, and export options.

use crate::error::{ExportError, Result};

/// Which PyTorch module the state_dict belongs to.
///
/// Both are exported as the V2 trainers configure them (convolutional pooling and upsampling). A
/// checkpoint of a v1 `nnUNetTrainer` (max pooling, interpolation upsampling) has no transposed-conv
/// weights and fails with [`crate::ExportError::MissingKey`] naming `tu.0.weight` / `up0.0.weight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `Generic_UNetPlusPlus` of MrGiovanni/UNetPlusPlus (`pytorch/`, commit e145ba6), as
    /// `nnUNetPlusPlusTrainerV2.initialize_network` builds it. Its forward pass hard-codes five
    /// resolution levels, so it needs exactly five pool kernels.
    UnetPlusPlus,
    /// nnU-Net v1's `Generic_UNet` (1.7.1), as `nnUNetTrainerV2.initialize_network` builds it.
    Unet,
}

impl Family {
    /// The family a trainer class name stands for: names containing `PlusPlus`
    /// (`nnUNetPlusPlusTrainerV2`, ...) are UNet++, any other `nnUNetTrainer*` is `Generic_UNet`.
    pub fn from_trainer_name(name: &str) -> Self {
        if name.contains("PlusPlus") {
            Family::UnetPlusPlus
        } else {
            Family::Unet
        }
    }

    /// The PyTorch class name (used as the ONNX graph name).
    pub fn module_name(self) -> &'static str {
        match self {
            Family::UnetPlusPlus => "Generic_UNetPlusPlus",
            Family::Unet => "Generic_UNet",
        }
    }
}

/// The hyper-parameters the trainer takes from the plans (`plans['plans_per_stage'][stage]` and
/// `plans['conv_per_stage']`), in nnU-Net's (z, y, x) axis order.
///
/// Channel counts are deliberately absent: they are read from the state_dict's tensor shapes
/// (the maximum feature count is not in the plans, and models differ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Module family.
    pub family: Family,
    /// Spatial input size of the exported graph (`patch_size`); 2 or 3 axes.
    pub patch_size: Vec<usize>,
    /// `pool_op_kernel_sizes`: one stride per axis per pooling (convolutional pooling, so these
    /// are the strides of the first conv of each encoder stage, and the kernel and stride of the
    /// matching transposed conv).
    pub pool_op_kernel_sizes: Vec<Vec<usize>>,
    /// `conv_kernel_sizes`: one kernel per resolution level, `pool_op_kernel_sizes.len() + 1` entries.
    pub conv_kernel_sizes: Vec<Vec<usize>>,
    /// `conv_per_stage` (2 in nnU-Net v1's default plans).
    pub conv_per_stage: usize,
}

impl NetworkSpec {
    /// Task003_Liver's 3d_fullres network as nnU-Net v1 plans it (the recipe's model): patch
    /// 128^3, five [2, 2, 2] poolings, [3, 3, 3] kernels at all six levels, two convs per stage.
    pub fn task003_fullres(family: Family) -> Self {
        NetworkSpec {
            family,
            patch_size: vec![128; 3],
            pool_op_kernel_sizes: vec![vec![2; 3]; 5],
            conv_kernel_sizes: vec![vec![3; 3]; 6],
            conv_per_stage: 2,
        }
    }

    /// Number of spatial axes (2 or 3).
    pub fn ndim(&self) -> usize {
        self.patch_size.len()
    }

    /// Number of poolings (`num_pool` in the PyTorch constructors).
    pub fn num_pool(&self) -> usize {
        self.pool_op_kernel_sizes.len()
    }

    /// Checks that lengths agree, the family's level count holds and the patch passes through
    /// the network without odd sizes.
    pub fn validate(&self) -> Result<()> {
        let nd = self.ndim();
        if nd != 2 && nd != 3 {
            return Err(ExportError::InvalidSpec(format!(
                "patch_size {:?} must have 2 or 3 axes",
                self.patch_size
            )));
        }
        if self.patch_size.contains(&0) {
            return Err(ExportError::InvalidSpec(format!(
                "patch_size {:?} has a zero extent",
                self.patch_size
            )));
        }
        if self.num_pool() == 0 {
            return Err(ExportError::InvalidSpec(
                "pool_op_kernel_sizes is empty".into(),
            ));
        }
        if self.family == Family::UnetPlusPlus && self.num_pool() != 5 {
            return Err(ExportError::InvalidSpec(format!(
                "Generic_UNetPlusPlus needs exactly 5 pool kernels (its forward pass hard-codes five \
                 levels), the plans have {}",
                self.num_pool()
            )));
        }
        if self.conv_kernel_sizes.len() != self.num_pool() + 1 {
            return Err(ExportError::InvalidSpec(format!(
                "conv_kernel_sizes has {} entries, expected {} (one per pool kernel plus the bottleneck)",
                self.conv_kernel_sizes.len(),
                self.num_pool() + 1
            )));
        }
        for (what, list) in [
            ("pool_op_kernel_sizes", &self.pool_op_kernel_sizes),
            ("conv_kernel_sizes", &self.conv_kernel_sizes),
        ] {
            for (i, k) in list.iter().enumerate() {
                if k.len() != nd || k.contains(&0) {
                    return Err(ExportError::InvalidSpec(format!(
                        "{what}[{i}] = {k:?} does not have {nd} positive entries"
                    )));
                }
            }
        }
        if self.conv_per_stage == 0 {
            return Err(ExportError::InvalidSpec(
                "conv_per_stage must be at least 1".into(),
            ));
        }
        let divisor: Vec<usize> = (0..nd)
            .map(|a| self.pool_op_kernel_sizes.iter().map(|k| k[a]).product())
            .collect();
        if self
            .patch_size
            .iter()
            .zip(&divisor)
            .any(|(p, d)| p % d != 0)
        {
            return Err(ExportError::PatchNotDivisible {
                patch: self.patch_size.clone(),
                divisor,
            });
        }
        Ok(())
    }
}

/// The batch axis of the exported input and outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchDim {
    /// A symbolic batch size (`batch`), as `torch.onnx.export` with `dynamic_axes` writes it.
    #[default]
    Dynamic,
    /// A fixed batch size (ATC and other static compilers prefer `1`).
    Fixed(usize),
}

/// How to export. The default matches the recipe's export: opset 11, dynamic batch, but only
/// the final head (`class`); set `deep_supervision` for all heads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// ONNX default-domain opset version (default 11). Every op used exists unchanged from opset 9
    /// to 21; the IR version is chosen to match.
    pub opset: i64,
    /// Also output the other deep-supervision heads after `class`, named `head_1`, `head_2`, ...
    /// in the order of the module's deep-supervision tuple (default false).
    pub deep_supervision: bool,
    /// Batch axis (default dynamic).
    pub batch: BatchDim,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            opset: 11,
            deep_supervision: false,
            batch: BatchDim::Dynamic,
        }
    }
}

/// The ONNX IR version that goes with a default-domain opset (the onnx package's
/// `OP_SET_ID_VERSION_MAP`), or an error for opsets this crate does not write.
pub(crate) fn ir_version_for_opset(opset: i64) -> Result<i64> {
    Ok(match opset {
        9 => 4,
        10 => 5,
        11 => 6,
        12..=14 => 7,
        15..=18 => 8,
        19..=20 => 9,
        21 => 10,
        _ => return Err(ExportError::UnsupportedOpset(opset)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> NetworkSpec {
        NetworkSpec {
            family: Family::Unet,
            patch_size: vec![32, 32, 32],
            pool_op_kernel_sizes: vec![vec![2, 2, 2]; 3],
            conv_kernel_sizes: vec![vec![3, 3, 3]; 4],
            conv_per_stage: 2,
        }
    }

    #[test]
    fn validate_accepts_reference_spec() {
        spec().validate().unwrap();
    }

    #[test]
    fn validate_rejects_bad_specs() {
        let mut s = spec();
        s.patch_size = vec![30, 32, 32];
        assert!(matches!(
            s.validate(),
            Err(ExportError::PatchNotDivisible { .. })
        ));
        let mut s = spec();
        s.family = Family::UnetPlusPlus;
        assert!(
            matches!(s.validate(), Err(ExportError::InvalidSpec(m)) if m.contains("exactly 5"))
        );
        let mut s = spec();
        s.conv_kernel_sizes.pop();
        assert!(matches!(s.validate(), Err(ExportError::InvalidSpec(_))));
        let mut s = spec();
        s.pool_op_kernel_sizes[1] = vec![2, 2];
        assert!(matches!(s.validate(), Err(ExportError::InvalidSpec(m)) if m.contains("[1]")));
    }

    #[test]
    fn trainer_names_map_to_families() {
        assert_eq!(
            Family::from_trainer_name("nnUNetPlusPlusTrainerV2"),
            Family::UnetPlusPlus
        );
        assert_eq!(Family::from_trainer_name("nnUNetTrainerV2"), Family::Unet);
    }

    #[test]
    fn opsets_map_to_ir_versions() {
        assert_eq!(ir_version_for_opset(11).unwrap(), 6);
        assert_eq!(ir_version_for_opset(13).unwrap(), 7);
        assert!(matches!(
            ir_version_for_opset(8),
            Err(ExportError::UnsupportedOpset(8))
        ));
    }
}
