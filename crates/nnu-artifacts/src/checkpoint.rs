//! torch checkpoints (`model_final_checkpoint.model`) and their trainer sidecar (`.model.pkl`).
//!
//! `torch.save` (torch >= 1.6) writes a zip archive `<name>/data.pkl` + `<name>/data/<key>` (one raw
//! little-endian storage per key) + `<name>/byteorder`. The pickle names storages by persistent ids and
//! builds tensors with `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`; see
//! `torch/serialization.py` (`_save`, `_load`). The legacy pre-1.6 format is refused with a clear error.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::numpy::{bf16_to_f32, f16_to_f32};
use crate::pickle::Value;
use crate::plans::Plans;
use crate::torch::{TensorDtype, TensorRef};
use crate::typed::{bad_value, At};

/// One entry of a state_dict: a dense tensor in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// The state_dict key, e.g. `conv_blocks_context.0.blocks.0.conv.weight`.
    pub name: String,
    /// Shape (empty for 0-d tensors such as `num_batches_tracked`).
    pub shape: Vec<usize>,
    /// Element type as saved.
    pub dtype: TensorDtype,
    /// The elements in C order, little-endian, `dtype.size()` bytes each (strides and storage offsets
    /// already applied).
    pub data: Vec<u8>,
}

impl NamedTensor {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The elements converted to `f32` in C order (float16 / bfloat16 exactly, float64 and large integers
    /// rounded to nearest).
    pub fn to_f32(&self) -> Vec<f32> {
        let d = &self.data;
        match self.dtype {
            TensorDtype::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            TensorDtype::F64 => d
                .chunks_exact(8)
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
            TensorDtype::F16 => d
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            TensorDtype::BF16 => d
                .chunks_exact(2)
                .map(|c| bf16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            TensorDtype::I64 => d
                .chunks_exact(8)
                .map(|c| {
                    i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
            TensorDtype::I32 => d
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
            TensorDtype::I16 => d
                .chunks_exact(2)
                .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])))
                .collect(),
            TensorDtype::I8 => d.iter().map(|&b| f32::from(b as i8)).collect(),
            TensorDtype::U8 | TensorDtype::Bool => d.iter().map(|&b| f32::from(b)).collect(),
        }
    }
}

/// A loaded checkpoint: the state_dict in the pickle's order, plus the epoch when saved by an nnU-Net trainer.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The file it came from.
    pub path: PathBuf,
    /// `epoch` (nnU-Net v1) or `current_epoch` (nnunetv2), when the checkpoint is a trainer dict.
    pub epoch: Option<i64>,
    /// The tensors of `state_dict` (v1) or `network_weights` (nnunetv2), in order.
    pub state_dict: Vec<NamedTensor>,
    /// What an nnunetv2 trainer stored beside `network_weights`; `None` for v1 checkpoints and bare
    /// state_dicts.
    pub v2: Option<V2TrainerInfo>,
}

/// The entries of an nnunetv2 `checkpoint_final.pth` / `checkpoint_best.pth` beside the weights
/// (`nnUNetTrainer.save_checkpoint`, nnunetv2 2.8.1). Other entries (optimizer, grad scaler, logging)
/// are not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V2TrainerInfo {
    /// `trainer_name`, e.g. `nnUNetTrainer`.
    pub trainer_name: Option<String>,
    /// `inference_allowed_mirroring_axes`: the spatial axes (0-based, in the network's axis order) test-time
    /// mirroring may flip; `None` when the trainer disabled mirroring (stored as `None`).
    pub inference_allowed_mirroring_axes: Option<Vec<usize>>,
    /// `init_args['configuration']`, e.g. `3d_fullres`, when present.
    pub configuration: Option<String>,
    /// `init_args['fold']` as written (`0`, ..., or `all`), when present.
    pub fold: Option<String>,
}

impl Checkpoint {
    /// Loads a `torch.save` zip archive holding either a trainer dict with a `state_dict` entry (what
    /// nnU-Net v1 saves) or a bare state_dict. Errors name the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Checkpoint> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Checkpoint::from_reader(file, path).map_err(|e| e.in_file(path))
    }

    fn from_reader(file: std::fs::File, path: &Path) -> Result<Checkpoint> {
        let mut magic = [0u8; 4];
        (&file).read_exact(&mut magic).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        if &magic != b"PK\x03\x04" {
            return Err(Error::Archive(
                "not a zip archive: the legacy (pre-1.6) torch.save format is not supported; re-save it with \
                 torch >= 1.6 (torch.save(torch.load(f), f))"
                    .into(),
            ));
        }
        let mut zip = zip::ZipArchive::new(file).map_err(|e| Error::Archive(e.to_string()))?;
        let pkl_name = zip
            .file_names()
            .find(|n| n.ends_with("/data.pkl") || *n == "data.pkl")
            .map(str::to_owned)
            .ok_or_else(|| Error::Archive("no data.pkl in the archive".into()))?;
        let prefix = &pkl_name[..pkl_name.len() - "data.pkl".len()];
        let pkl = read_entry(&mut zip, &pkl_name)?;
        let big_endian = match zip.by_name(&format!("{prefix}byteorder")) {
            Ok(mut f) => {
                let mut s = String::new();
                f.read_to_string(&mut s)
                    .map_err(|e| Error::Archive(format!("{prefix}byteorder: {e}")))?;
                s.trim() == "big"
            }
            Err(_) => false,
        };
        let root = crate::pickle::from_slice(&pkl).map_err(|e| e.in_file(&pkl_name))?;
        let (sd, sd_path, epoch, v2) = match root.as_dict() {
            Some(d) => match (d.get_str("state_dict"), d.get_str("network_weights")) {
                (Some(sd), _) => (
                    sd,
                    "state_dict",
                    d.get_str("epoch").and_then(Value::as_i64),
                    None,
                ),
                (None, Some(sd)) => (
                    sd,
                    "network_weights",
                    d.get_str("current_epoch").and_then(Value::as_i64),
                    Some(V2TrainerInfo::from_dict(d)?),
                ),
                (None, None) => (&root, "", None, None),
            },
            None => return Err(bad_value("", "a dict", &root)),
        };
        let entries = &At {
            v: sd,
            path: sd_path,
        }
        .dict()?
        .entries;
        let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
        let mut state_dict = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let name = k
                .as_str()
                .ok_or_else(|| bad_value(sd_path, "string keys", k))?
                .to_owned();
            let key_path = crate::typed::join(sd_path, &name);
            let Value::Tensor(t) = v else {
                return Err(bad_value(&key_path, "a tensor", v));
            };
            if !storages.contains_key(&t.storage.key) {
                let entry = format!("{prefix}data/{}", t.storage.key);
                let bytes = read_entry(&mut zip, &entry)?;
                storages.insert(t.storage.key.clone(), bytes);
            }
            let raw = &storages[&t.storage.key];
            let data = gather(t, raw, big_endian).map_err(|what| Error::BadValue {
                key: key_path.clone(),
                expected: "a tensor inside its storage".into(),
                found: what,
            })?;
            state_dict.push(NamedTensor {
                name,
                shape: t.shape.clone(),
                dtype: t.storage.dtype,
                data,
            });
        }
        Ok(Checkpoint {
            path: path.to_owned(),
            epoch,
            state_dict,
            v2,
        })
    }

    /// The tensor named `name`.
    pub fn get(&self, name: &str) -> Option<&NamedTensor> {
        self.state_dict.iter().find(|t| t.name == name)
    }

    /// Number of elements in the floating-point tensors. nnU-Net's networks keep no floating-point buffers
    /// (instance norm without running statistics), so this equals `sum(p.numel() for p in net.parameters())`.
    pub fn num_parameters(&self) -> usize {
        self.state_dict
            .iter()
            .filter(|t| {
                matches!(
                    t.dtype,
                    TensorDtype::F32 | TensorDtype::F64 | TensorDtype::F16 | TensorDtype::BF16
                )
            })
            .map(NamedTensor::numel)
            .sum()
    }
}

impl V2TrainerInfo {
    fn from_dict(d: &crate::pickle::Dict) -> Result<V2TrainerInfo> {
        let trainer_name = d
            .get_str("trainer_name")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let inference_allowed_mirroring_axes = match d.get_str("inference_allowed_mirroring_axes") {
            None | Some(Value::None) => None,
            Some(v) => Some(
                At {
                    v,
                    path: "inference_allowed_mirroring_axes",
                }
                .seq_usize()?,
            ),
        };
        let init = d.get_str("init_args").and_then(Value::as_dict);
        let configuration = init
            .and_then(|i| i.get_str("configuration"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let fold = init.and_then(|i| i.get_str("fold")).map(|v| match v {
            Value::Str(s) => s.to_string(),
            v => v.to_string(),
        });
        Ok(V2TrainerInfo {
            trainer_name,
            inference_allowed_mirroring_axes,
            configuration,
            fold,
        })
    }
}

fn read_entry(zip: &mut zip::ZipArchive<std::fs::File>, name: &str) -> Result<Vec<u8>> {
    let mut f = zip
        .by_name(name)
        .map_err(|e| Error::Archive(format!("{name}: {e}")))?;
    // The size in the header is a hint only; a damaged archive may claim anything.
    let mut out = Vec::with_capacity(usize::try_from(f.size()).unwrap_or(0).min(1 << 26));
    f.read_to_end(&mut out)
        .map_err(|e| Error::Archive(format!("{name}: {e}")))?;
    Ok(out)
}

/// Copies the elements a strided view selects into a dense C-order buffer (little-endian).
fn gather(t: &TensorRef, raw: &[u8], big_endian: bool) -> Result<Vec<u8>, String> {
    let es = t.storage.dtype.size();
    let available = (raw.len() / es) as u64;
    let numel = t
        .shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
        .ok_or("shape overflows")?;
    let mut out = Vec::new();
    if numel > 0 {
        // Highest element index the view touches.
        let mut last = t.storage_offset;
        for (&d, &s) in t.shape.iter().zip(&t.stride) {
            last = (d as u64 - 1)
                .checked_mul(s as u64)
                .and_then(|x| x.checked_add(last))
                .ok_or("strides overflow")?;
        }
        if last >= available {
            return Err(format!(
                "storage {} has {available} elements, the view reaches element {last}",
                t.storage.key
            ));
        }
        if numel > available {
            // Only zero strides (expanded views) select more elements than the storage holds.
            return Err(format!(
                "the view selects {numel} elements from a storage of {available} (zero strides are not supported)"
            ));
        }
        let numel = numel as usize;
        out.reserve_exact(numel * es);
        let contiguous = {
            let mut expect = 1usize;
            let mut ok = true;
            for (&d, &s) in t.shape.iter().zip(&t.stride).rev() {
                if d != 1 && s != expect {
                    ok = false;
                }
                expect *= d;
            }
            ok
        };
        let off = t.storage_offset as usize;
        if contiguous {
            out.extend_from_slice(&raw[off * es..(off + numel) * es]);
        } else {
            let nd = t.shape.len();
            let mut idx = vec![0usize; nd];
            let mut pos = off;
            for _ in 0..numel {
                out.extend_from_slice(&raw[pos * es..(pos + 1) * es]);
                for k in (0..nd).rev() {
                    idx[k] += 1;
                    pos += t.stride[k];
                    if idx[k] < t.shape[k] {
                        break;
                    }
                    pos -= t.stride[k] * t.shape[k];
                    idx[k] = 0;
                }
            }
        }
    }
    if big_endian && es > 1 {
        out.chunks_exact_mut(es).for_each(<[u8]>::reverse);
    }
    Ok(out)
}

/// What `model_final_checkpoint.model.pkl` says about the trainer that made a checkpoint.
#[derive(Clone, Debug)]
pub struct TrainerInfo {
    /// `name`, e.g. `nnUNetPlusPlusTrainerV2` or `nnUNetTrainerV2`.
    pub name: String,
    /// `class`, e.g. `<class 'nnunet.training.network_training.nnUNetTrainerV2.nnUNetTrainerV2'>`.
    pub class: Option<String>,
    /// The trainer's `__init__` arguments (`init`), each as a Python-like repr. For nnU-Net v1 trainers:
    /// plans_file, fold, output_folder, dataset_directory, batch_dice, stage, unpack_data, deterministic, fp16.
    pub init: Vec<String>,
    /// The plans the trainer used (`plans`), when present.
    pub plans: Option<Plans>,
}

impl TrainerInfo {
    /// Reads a `.model.pkl` sidecar. Errors name the file and the missing key.
    pub fn load(path: impl AsRef<Path>) -> Result<TrainerInfo> {
        let path = path.as_ref();
        let v = crate::pickle::from_path(path)?;
        TrainerInfo::from_value(&v).map_err(|e| e.in_file(path))
    }

    /// Reads the trainer info from a decoded value.
    pub fn from_value(v: &Value) -> Result<TrainerInfo> {
        let root = At { v, path: "" };
        let (n, np) = root.key("name")?;
        let name = At { v: n, path: &np }.string()?;
        let class = match root.opt_key("class")? {
            Some((v, p)) => Some(At { v, path: &p }.string()?),
            None => None,
        };
        let init = match root.opt_key("init")? {
            Some((v, p)) => v
                .as_seq()
                .ok_or_else(|| bad_value(&p, "a tuple", v))?
                .iter()
                .map(ToString::to_string)
                .collect(),
            None => Vec::new(),
        };
        let plans = match root.opt_key("plans")? {
            Some((Value::None, _)) | None => None,
            Some((v, _)) => Some(Plans::from_value(v).map_err(|e| prefix_key(e, "plans"))?),
        };
        Ok(TrainerInfo {
            name,
            class,
            init,
            plans,
        })
    }
}

/// Prefixes the key path of a key error with `outer`.
fn prefix_key(e: Error, outer: &str) -> Error {
    match e {
        Error::MissingKey { key } => Error::MissingKey {
            key: crate::typed::join(outer, &key),
        },
        Error::BadValue {
            key,
            expected,
            found,
        } => Error::BadValue {
            key: crate::typed::join(outer, &key),
            expected,
            found,
        },
        e => e,
    }
}
