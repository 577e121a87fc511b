//! Devices with their context, streams and device memory, released on drop.

use std::os::raw::c_void;

use nnu_acl_sys as sys;

use crate::error::{AclError, Result};
use crate::runtime::Runtime;

/// One NPU opened for this process: `aclrtSetDevice` plus an explicit context (`aclrtCreateContext`).
///
/// AscendCL binds the current context to the calling thread. Everything in this crate that uses a device
/// first makes its context current ([`Device::make_current`]), so a device (and the model runner that owns
/// it) can be moved to another thread. Dropping it destroys the context and calls `aclrtResetDevice`.
pub struct Device {
    rt: Runtime,
    id: i32,
    ctx: sys::aclrtContext,
}

// SAFETY: the context is a handle usable from any thread once made current there, which every method
// does; the type is not Sync, so two threads never use it at once.
unsafe impl Send for Device {}

impl Device {
    /// Opens device `id`.
    pub fn open(rt: &Runtime, id: i32) -> Result<Device> {
        let ctx_of = || format!("device {id}");
        // SAFETY: plain calls with an id and out pointer.
        let code = unsafe { rt.lib().aclrtSetDevice(id) };
        rt.check(code, "aclrtSetDevice", ctx_of)?;
        let mut ctx: sys::aclrtContext = std::ptr::null_mut();
        // SAFETY: ctx is a valid out pointer.
        let code = unsafe { rt.lib().aclrtCreateContext(&mut ctx, id) };
        if let Err(e) = rt.check(code, "aclrtCreateContext", ctx_of) {
            // SAFETY: undo the aclrtSetDevice above.
            unsafe { rt.lib().aclrtResetDevice(id) };
            return Err(e);
        }
        Ok(Device {
            rt: rt.clone(),
            id,
            ctx,
        })
    }

    /// The device id.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The runtime this device belongs to.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// Makes this device's context current on the calling thread.
    pub fn make_current(&self) -> Result<()> {
        // SAFETY: ctx is a live context created by aclrtCreateContext.
        let code = unsafe { self.rt.lib().aclrtSetCurrentContext(self.ctx) };
        self.rt.check(code, "aclrtSetCurrentContext", || {
            format!("device {}", self.id)
        })
    }

    pub(crate) fn ctx_string(&self) -> String {
        format!("device {}", self.id)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: the context and device were set up in `open`; owners of buffers, streams and models on
        // this device drop them first (they are declared before the device in `Runner`).
        unsafe {
            self.rt.lib().aclrtDestroyContext(self.ctx);
            self.rt.lib().aclrtResetDevice(self.id);
        }
    }
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device").field("id", &self.id).finish()
    }
}

/// A stream on a device (`aclrtCreateStream`), destroyed on drop.
pub struct Stream {
    rt: Runtime,
    device: i32,
    raw: sys::aclrtStream,
}

// SAFETY: see `Device`.
unsafe impl Send for Stream {}

impl Stream {
    /// Creates a stream on `device`.
    pub fn new(device: &Device) -> Result<Stream> {
        device.make_current()?;
        let rt = device.runtime();
        let mut raw: sys::aclrtStream = std::ptr::null_mut();
        // SAFETY: raw is a valid out pointer; the device's context is current.
        let code = unsafe { rt.lib().aclrtCreateStream(&mut raw) };
        rt.check(code, "aclrtCreateStream", || device.ctx_string())?;
        Ok(Stream {
            rt: rt.clone(),
            device: device.id(),
            raw,
        })
    }

    /// Waits until all work queued on the stream is done.
    pub fn synchronize(&self) -> Result<()> {
        // SAFETY: raw is a live stream.
        let code = unsafe { self.rt.lib().aclrtSynchronizeStream(self.raw) };
        self.rt.check(code, "aclrtSynchronizeStream", || {
            format!("device {}", self.device)
        })
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: raw is a live stream created by aclrtCreateStream.
        unsafe { self.rt.lib().aclrtDestroyStream(self.raw) };
    }
}

/// Device memory (`aclrtMalloc`, huge pages first), freed on drop.
pub struct DeviceBuffer {
    rt: Runtime,
    device: i32,
    ptr: *mut c_void,
    size: usize,
}

// SAFETY: device memory is addressed by a plain pointer valid in any thread of the process.
unsafe impl Send for DeviceBuffer {}

impl DeviceBuffer {
    /// Allocates `size` bytes on `device` (its context is made current first).
    pub fn alloc(device: &Device, size: usize) -> Result<DeviceBuffer> {
        device.make_current()?;
        let rt = device.runtime();
        let mut ptr: *mut c_void = std::ptr::null_mut();
        // SAFETY: ptr is a valid out pointer.
        let code = unsafe {
            rt.lib().aclrtMalloc(
                &mut ptr,
                size,
                sys::aclrtMemMallocPolicy_ACL_MEM_MALLOC_HUGE_FIRST,
            )
        };
        rt.check(code, "aclrtMalloc", || {
            format!("{size} bytes on device {}", device.id())
        })?;
        Ok(DeviceBuffer {
            rt: rt.clone(),
            device: device.id(),
            ptr,
            size,
        })
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn as_ptr(&self) -> *mut c_void {
        self.ptr
    }

    /// Copies `data` to the start of the buffer (`ACL_MEMCPY_HOST_TO_DEVICE`); `data` may be shorter.
    pub fn copy_from_host(&mut self, data: &[u8]) -> Result<()> {
        if data.len() > self.size {
            return Err(AclError::Size {
                what: format!("copy to a device buffer on device {}", self.device),
                expected: self.size,
                got: data.len(),
            });
        }
        // SAFETY: ptr holds `size` bytes, data.len() <= size.
        let code = unsafe {
            self.rt.lib().aclrtMemcpy(
                self.ptr,
                self.size,
                data.as_ptr().cast(),
                data.len(),
                sys::aclrtMemcpyKind_ACL_MEMCPY_HOST_TO_DEVICE,
            )
        };
        self.rt.check(code, "aclrtMemcpy", || {
            format!("{} bytes host to device {}", data.len(), self.device)
        })
    }

    /// Copies the start of the buffer into `out` (`ACL_MEMCPY_DEVICE_TO_HOST`); `out` may be shorter.
    pub fn copy_to_host(&self, out: &mut [u8]) -> Result<()> {
        if out.len() > self.size {
            return Err(AclError::Size {
                what: format!("copy from a device buffer on device {}", self.device),
                expected: self.size,
                got: out.len(),
            });
        }
        // SAFETY: out holds out.len() bytes, the buffer at least as many.
        let code = unsafe {
            self.rt.lib().aclrtMemcpy(
                out.as_mut_ptr().cast(),
                out.len(),
                self.ptr,
                out.len(),
                sys::aclrtMemcpyKind_ACL_MEMCPY_DEVICE_TO_HOST,
            )
        };
        self.rt.check(code, "aclrtMemcpy", || {
            format!("{} bytes device {} to host", out.len(), self.device)
        })
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        // SAFETY: ptr came from aclrtMalloc and is freed once.
        unsafe { self.rt.lib().aclrtFree(self.ptr) };
    }
}

impl std::fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceBuffer")
            .field("device", &self.device)
            .field("size", &self.size)
            .finish()
    }
}

/// A model dataset (`aclmdlCreateDataset`) holding one data buffer per device buffer, destroyed on drop.
///
/// The dataset stores raw addresses of the buffers: its owner must keep them alive (and unmoved in device
/// memory, which they are) for as long as the dataset exists.
pub(crate) struct Dataset {
    rt: Runtime,
    raw: *mut sys::aclmdlDataset,
    buffers: Vec<*mut sys::aclDataBuffer>,
}

// SAFETY: plain handles, used only by their owner.
unsafe impl Send for Dataset {}

impl Dataset {
    pub(crate) fn new(rt: &Runtime, buffers: &[DeviceBuffer], what: &str) -> Result<Dataset> {
        // SAFETY: plain constructor.
        let raw = unsafe { rt.lib().aclmdlCreateDataset() };
        if raw.is_null() {
            return Err(rt.null("aclmdlCreateDataset", || what.to_string()));
        }
        let mut ds = Dataset {
            rt: rt.clone(),
            raw,
            buffers: Vec::with_capacity(buffers.len()),
        };
        for (i, b) in buffers.iter().enumerate() {
            // SAFETY: the device buffer outlives the dataset (owner's contract).
            let db = unsafe { rt.lib().aclCreateDataBuffer(b.as_ptr(), b.size()) };
            if db.is_null() {
                return Err(rt.null("aclCreateDataBuffer", || format!("{what} {i}")));
            }
            ds.buffers.push(db);
            // SAFETY: both handles are live.
            let code = unsafe { rt.lib().aclmdlAddDatasetBuffer(raw, db) };
            rt.check(code, "aclmdlAddDatasetBuffer", || format!("{what} {i}"))?;
        }
        Ok(ds)
    }

    pub(crate) fn raw(&self) -> *mut sys::aclmdlDataset {
        self.raw
    }
}

impl Drop for Dataset {
    fn drop(&mut self) {
        // SAFETY: handles created in `new`, destroyed once.
        unsafe {
            for &b in &self.buffers {
                self.rt.lib().aclDestroyDataBuffer(b);
            }
            self.rt.lib().aclmdlDestroyDataset(self.raw);
        }
    }
}
