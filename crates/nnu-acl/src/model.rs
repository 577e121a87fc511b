//! `.om` models: loading, description, and a runner owning device buffers and datasets.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use nnu_acl_sys as sys;

use crate::device::{Dataset, Device, DeviceBuffer, Stream};
use crate::error::{AclError, Result};
use crate::runtime::Runtime;
use nnu_numerics::{f16_to_f32, f32_to_f16};

/// Element type of a model input or output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    /// `ACL_FLOAT` (f32): what ATC keeps with `--precision_mode=must_keep_origin_dtype`.
    Float32,
    /// `ACL_FLOAT16`.
    Float16,
    /// Any other `aclDataType` code (not supported for running).
    Other(i32),
}

impl DataType {
    fn from_raw(v: i32) -> Self {
        match v {
            0 => DataType::Float32,
            1 => DataType::Float16,
            v => DataType::Other(v),
        }
    }

    /// Bytes per element, for the supported types.
    pub fn size(self) -> Option<usize> {
        match self {
            DataType::Float32 => Some(4),
            DataType::Float16 => Some(2),
            DataType::Other(_) => None,
        }
    }
}

/// One model input or output as the model description reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Tensor name (`image`, `class`, ... for our exports).
    pub name: String,
    /// Size in bytes (`aclmdlGetInputSizeByIndex` / `...Output...`).
    pub size: usize,
    /// Dimensions (`aclmdlGetInputDims`); -1 marks a dynamic dimension.
    pub dims: Vec<i64>,
    /// Element type.
    pub dtype: DataType,
}

impl TensorInfo {
    /// Number of elements, if every dimension is static.
    pub fn elements(&self) -> Option<usize> {
        self.dims.iter().try_fold(1usize, |acc, &d| {
            usize::try_from(d).ok().and_then(|d| acc.checked_mul(d))
        })
    }
}

/// A model's inputs and outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// Inputs, in order.
    pub inputs: Vec<TensorInfo>,
    /// Outputs, in order (for our exports, output 0 is the final head `class`).
    pub outputs: Vec<TensorInfo>,
}

/// A loaded `.om` model with its description, unloaded on drop.
pub struct Model {
    rt: Runtime,
    path: PathBuf,
    id: u32,
    desc: *mut sys::aclmdlDesc,
    info: ModelInfo,
}

// SAFETY: plain handles; used only by their owner, which makes the device's context current first.
unsafe impl Send for Model {}

impl Model {
    /// Loads `path` on `device` (`aclmdlLoadFromFile`) and reads its description.
    pub fn load(device: &Device, path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref().to_path_buf();
        device.make_current()?;
        let rt = device.runtime().clone();
        let cpath =
            CString::new(path.to_string_lossy().into_owned()).map_err(|_| AclError::Model {
                path: path.clone(),
                reason: "path contains a NUL byte".into(),
            })?;
        let ctx = || format!("{} on device {}", path.display(), device.id());
        let mut id = 0u32;
        // SAFETY: cpath is NUL-terminated, id a valid out pointer.
        let code = unsafe { rt.lib().aclmdlLoadFromFile(cpath.as_ptr(), &mut id) };
        rt.check(code, "aclmdlLoadFromFile", ctx)?;
        // SAFETY: plain constructor.
        let desc = unsafe { rt.lib().aclmdlCreateDesc() };
        let mut model = Model {
            rt: rt.clone(),
            path: path.clone(),
            id,
            desc,
            info: ModelInfo {
                inputs: Vec::new(),
                outputs: Vec::new(),
            },
        };
        if desc.is_null() {
            return Err(rt.null("aclmdlCreateDesc", ctx));
        }
        // SAFETY: desc and id are live.
        let code = unsafe { rt.lib().aclmdlGetDesc(desc, id) };
        rt.check(code, "aclmdlGetDesc", ctx)?;
        model.info = model.read_info()?;
        Ok(model)
    }

    fn read_info(&self) -> Result<ModelInfo> {
        let lib = self.rt.lib();
        let d = self.desc;
        // SAFETY: desc is a live, filled description; indices are below the counts.
        unsafe {
            let n_in = lib.aclmdlGetNumInputs(d);
            let n_out = lib.aclmdlGetNumOutputs(d);
            let mut inputs = Vec::with_capacity(n_in);
            for i in 0..n_in {
                let mut dims = sys::aclmdlIODims::default();
                let code = lib.aclmdlGetInputDims(d, i, &mut dims);
                self.rt.check(code, "aclmdlGetInputDims", || {
                    format!("{} input {i}", self.path.display())
                })?;
                inputs.push(TensorInfo {
                    name: c_name(lib.aclmdlGetInputNameByIndex(d, i)),
                    size: lib.aclmdlGetInputSizeByIndex(d, i),
                    dims: dims.dims[..dims.dimCount.min(dims.dims.len())].to_vec(),
                    dtype: DataType::from_raw(lib.aclmdlGetInputDataType(d, i)),
                });
            }
            let mut outputs = Vec::with_capacity(n_out);
            for i in 0..n_out {
                let mut dims = sys::aclmdlIODims::default();
                let code = lib.aclmdlGetOutputDims(d, i, &mut dims);
                self.rt.check(code, "aclmdlGetOutputDims", || {
                    format!("{} output {i}", self.path.display())
                })?;
                outputs.push(TensorInfo {
                    name: c_name(lib.aclmdlGetOutputNameByIndex(d, i)),
                    size: lib.aclmdlGetOutputSizeByIndex(d, i),
                    dims: dims.dims[..dims.dimCount.min(dims.dims.len())].to_vec(),
                    dtype: DataType::from_raw(lib.aclmdlGetOutputDataType(d, i)),
                });
            }
            Ok(ModelInfo { inputs, outputs })
        }
    }

    /// Inputs and outputs.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The `.om` file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn c_name(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: a NUL-terminated name owned by the description.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: handles created in `load`, released once; the owner made the context current.
        unsafe {
            if !self.desc.is_null() {
                self.rt.lib().aclmdlDestroyDesc(self.desc);
            }
            self.rt.lib().aclmdlUnload(self.id);
        }
    }
}

/// Everything needed to run one model on one device: the device (context), a stream, the model, one
/// device buffer per input and output, and the two datasets over them. Built once, run many times.
///
/// Inputs and outputs are exchanged as f32 on the host; f16 model inputs and outputs are converted.
pub struct Runner {
    // Field order is drop order: datasets, buffers, model and stream before the device's context.
    input_ds: Dataset,
    output_ds: Dataset,
    inputs: Vec<DeviceBuffer>,
    outputs: Vec<DeviceBuffer>,
    model: Model,
    _stream: Stream,
    device: Device,
    host: Vec<u8>,
}

impl Runner {
    /// Opens `device_id`, loads `model` there and allocates its buffers and datasets. Every input and
    /// output must have a static shape and an f32 or f16 element type.
    pub fn new(rt: &Runtime, device_id: i32, model: impl AsRef<Path>) -> Result<Runner> {
        let device = Device::open(rt, device_id)?;
        let stream = Stream::new(&device)?;
        let model = Model::load(&device, model)?;
        let bad = |reason: String| AclError::Model {
            path: model.path().to_path_buf(),
            reason,
        };
        if model.info().inputs.is_empty() || model.info().outputs.is_empty() {
            return Err(bad("the model has no inputs or no outputs".into()));
        }
        for (kind, list) in [
            ("input", &model.info().inputs),
            ("output", &model.info().outputs),
        ] {
            for (i, t) in list.iter().enumerate() {
                let (Some(n), Some(es)) = (t.elements(), t.dtype.size()) else {
                    return Err(bad(format!(
                        "{kind} {i} ({}) has dims {:?} and type {:?}; only static f32/f16 tensors are supported",
                        t.name, t.dims, t.dtype
                    )));
                };
                if n * es != t.size {
                    return Err(bad(format!(
                        "{kind} {i} ({}): dims {:?} x {es} bytes != reported size {}",
                        t.name, t.dims, t.size
                    )));
                }
            }
        }
        let alloc = |list: &[TensorInfo]| -> Result<Vec<DeviceBuffer>> {
            list.iter()
                .map(|t| DeviceBuffer::alloc(&device, t.size))
                .collect()
        };
        let inputs = alloc(&model.info().inputs)?;
        let outputs = alloc(&model.info().outputs)?;
        let input_ds = Dataset::new(rt, &inputs, "input")?;
        let output_ds = Dataset::new(rt, &outputs, "output")?;
        Ok(Runner {
            input_ds,
            output_ds,
            inputs,
            outputs,
            model,
            _stream: stream,
            device,
            host: Vec::new(),
        })
    }

    /// The model's inputs and outputs.
    pub fn info(&self) -> &ModelInfo {
        self.model.info()
    }

    /// The device id.
    pub fn device_id(&self) -> i32 {
        self.device.id()
    }

    /// The model file.
    pub fn model_path(&self) -> &Path {
        self.model.path()
    }

    /// Copies `data` (f32, converted to the input's type) into input `index`; `data` must hold exactly the
    /// input's element count, or fewer with `allow_short` (the rest is zero, e.g. a partial batch).
    pub fn set_input(&mut self, index: usize, data: &[f32], allow_short: bool) -> Result<()> {
        let t = self
            .info()
            .inputs
            .get(index)
            .cloned()
            .ok_or_else(|| AclError::Model {
                path: self.model.path().to_path_buf(),
                reason: format!("no input {index}"),
            })?;
        let n = t.elements().unwrap_or(0);
        if data.len() > n || (!allow_short && data.len() != n) {
            return Err(AclError::Size {
                what: format!(
                    "input {index} ({}) of {}",
                    t.name,
                    self.model.path().display()
                ),
                expected: t.size,
                got: data.len() * t.dtype.size().unwrap_or(4),
            });
        }
        self.host.clear();
        match t.dtype {
            DataType::Float16 => {
                for v in data {
                    self.host.extend_from_slice(&f32_to_f16(*v).to_le_bytes());
                }
            }
            _ => {
                for v in data {
                    self.host.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        self.host.resize(t.size, 0);
        self.device.make_current()?;
        let host = std::mem::take(&mut self.host);
        let r = self.inputs[index].copy_from_host(&host);
        self.host = host;
        r
    }

    /// Runs the model on the inputs set (`aclmdlExecute`, synchronous).
    pub fn execute(&mut self) -> Result<()> {
        self.device.make_current()?;
        let rt = self.device.runtime();
        // SAFETY: model and datasets are live; the datasets' buffers match the description.
        let code = unsafe {
            rt.lib()
                .aclmdlExecute(self.model.id, self.input_ds.raw(), self.output_ds.raw())
        };
        rt.check(code, "aclmdlExecute", || {
            format!(
                "{} on device {}",
                self.model.path().display(),
                self.device.id()
            )
        })
    }

    /// Copies output `index` to the host as f32 into `out` (resized to the output's element count).
    pub fn output(&mut self, index: usize, out: &mut Vec<f32>) -> Result<()> {
        let t = self
            .info()
            .outputs
            .get(index)
            .cloned()
            .ok_or_else(|| AclError::Model {
                path: self.model.path().to_path_buf(),
                reason: format!("no output {index}"),
            })?;
        self.device.make_current()?;
        self.host.resize(t.size, 0);
        self.outputs[index].copy_to_host(&mut self.host)?;
        out.clear();
        match t.dtype {
            DataType::Float16 => out.extend(
                self.host
                    .chunks_exact(2)
                    .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))),
            ),
            _ => out.extend(
                self.host
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
        }
        Ok(())
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // Releases happen in the device's context, whichever thread drops the runner.
        let _ = self.device.make_current();
    }
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("device", &self.device.id())
            .field("model", &self.model.path())
            .field("info", self.info())
            .finish()
    }
}
