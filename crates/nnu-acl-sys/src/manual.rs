//! Checked-in bindings for the subset of AscendCL that `nnu-acl` uses, written from the public AscendCL
//! API reference (`acl_base.h`, `acl_rt.h`, `acl_mdl.h` of CANN 5.x-8.x; the declarations used here are
//! unchanged across those versions). Names, types and the shape of [`AscendCl`] follow what bindgen
//! generates with `dynamic_library_name("AscendCl")`, so code written against this module also compiles
//! against the generated bindings of the `bindgen` feature.

#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    missing_docs
)]
#![allow(clippy::missing_safety_doc, clippy::too_many_arguments)]

use std::os::raw::{c_char, c_int, c_uint, c_void};

/// Return code of most AscendCL calls (`ACL_SUCCESS` = 0).
pub type aclError = c_int;
/// A stream (`void *`).
pub type aclrtStream = *mut c_void;
/// A context (`void *`).
pub type aclrtContext = *mut c_void;

/// Opaque model description.
#[repr(C)]
pub struct aclmdlDesc {
    _unused: [u8; 0],
}
/// Opaque list of data buffers (a model's inputs or outputs).
#[repr(C)]
pub struct aclmdlDataset {
    _unused: [u8; 0],
}
/// Opaque (address, size) pair.
#[repr(C)]
pub struct aclDataBuffer {
    _unused: [u8; 0],
}

pub const ACL_SUCCESS: c_int = 0;
pub const ACL_ERROR_INVALID_PARAM: c_int = 100000;
pub const ACL_ERROR_UNINITIALIZE: c_int = 100001;
pub const ACL_ERROR_REPEAT_INITIALIZE: c_int = 100002;

pub const ACL_MAX_DIM_CNT: u32 = 128;
pub const ACL_MAX_TENSOR_NAME_LEN: u32 = 128;

/// `aclDataType` (an enum with a negative member, hence `int`).
pub type aclDataType = c_int;
pub const aclDataType_ACL_DT_UNDEFINED: aclDataType = -1;
pub const aclDataType_ACL_FLOAT: aclDataType = 0;
pub const aclDataType_ACL_FLOAT16: aclDataType = 1;

/// `aclrtMemMallocPolicy`.
pub type aclrtMemMallocPolicy = c_uint;
pub const aclrtMemMallocPolicy_ACL_MEM_MALLOC_HUGE_FIRST: aclrtMemMallocPolicy = 0;
pub const aclrtMemMallocPolicy_ACL_MEM_MALLOC_HUGE_ONLY: aclrtMemMallocPolicy = 1;
pub const aclrtMemMallocPolicy_ACL_MEM_MALLOC_NORMAL_ONLY: aclrtMemMallocPolicy = 2;

/// `aclrtMemcpyKind`.
pub type aclrtMemcpyKind = c_uint;
pub const aclrtMemcpyKind_ACL_MEMCPY_HOST_TO_HOST: aclrtMemcpyKind = 0;
pub const aclrtMemcpyKind_ACL_MEMCPY_HOST_TO_DEVICE: aclrtMemcpyKind = 1;
pub const aclrtMemcpyKind_ACL_MEMCPY_DEVICE_TO_HOST: aclrtMemcpyKind = 2;
pub const aclrtMemcpyKind_ACL_MEMCPY_DEVICE_TO_DEVICE: aclrtMemcpyKind = 3;

/// Dimensions of a model input or output.
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct aclmdlIODims {
    pub name: [c_char; 128usize],
    pub dimCount: usize,
    pub dims: [i64; 128usize],
}

impl Default for aclmdlIODims {
    fn default() -> Self {
        aclmdlIODims {
            name: [0; 128],
            dimCount: 0,
            dims: [0; 128],
        }
    }
}

/// Declares the run-time loaded library struct the way bindgen's dynamic loading does: one
/// `Result<fn pointer, libloading::Error>` field per symbol (a missing symbol does not fail the load) and
/// one `unsafe` method per symbol that calls it (and panics if the symbol is missing: check the field first).
macro_rules! dynamic_library {
    ($( fn $name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty ; )*) => {
        /// `libascendcl.so`, loaded at run time, with one field and one method per AscendCL function.
        pub struct AscendCl {
            __library: ::libloading::Library,
            $( pub $name: Result<unsafe extern "C" fn($($arg: $ty),*) -> $ret, ::libloading::Error>, )*
        }

        impl AscendCl {
            /// Loads the library at `path` (a bare file name is searched like `dlopen` does).
            ///
            /// # Safety
            /// Loading runs the library's initialisers; `path` must be an AscendCL implementation.
            pub unsafe fn new<P>(path: P) -> Result<Self, ::libloading::Error>
            where
                P: AsRef<::std::ffi::OsStr>,
            {
                let library = ::libloading::Library::new(path)?;
                Self::from_library(library)
            }

            /// Resolves the symbols of an already loaded library.
            ///
            /// # Safety
            /// The library must be an AscendCL implementation whose symbols have the declared types.
            pub unsafe fn from_library<L>(library: L) -> Result<Self, ::libloading::Error>
            where
                L: Into<::libloading::Library>,
            {
                let __library = library.into();
                $( let $name = __library.get(concat!(stringify!($name), "\0").as_bytes()).map(|sym| *sym); )*
                Ok(AscendCl { __library, $($name),* })
            }

            $(
                /// Calls the AscendCL function of the same name.
                ///
                /// # Safety
                /// The AscendCL contract of the function applies; panics if the symbol is missing.
                pub unsafe fn $name(&self, $($arg: $ty),*) -> $ret {
                    (self.$name.as_ref().expect("Expected function, got error."))($($arg),*)
                }
            )*
        }
    };
}

dynamic_library! {
    fn aclInit(configPath: *const c_char) -> aclError;
    fn aclFinalize() -> aclError;
    fn aclGetRecentErrMsg() -> *const c_char;

    fn aclrtSetDevice(deviceId: i32) -> aclError;
    fn aclrtResetDevice(deviceId: i32) -> aclError;
    fn aclrtGetDeviceCount(count: *mut u32) -> aclError;
    fn aclrtCreateContext(context: *mut aclrtContext, deviceId: i32) -> aclError;
    fn aclrtDestroyContext(context: aclrtContext) -> aclError;
    fn aclrtSetCurrentContext(context: aclrtContext) -> aclError;
    fn aclrtCreateStream(stream: *mut aclrtStream) -> aclError;
    fn aclrtDestroyStream(stream: aclrtStream) -> aclError;
    fn aclrtSynchronizeStream(stream: aclrtStream) -> aclError;
    fn aclrtMalloc(devPtr: *mut *mut c_void, size: usize, policy: aclrtMemMallocPolicy) -> aclError;
    fn aclrtFree(devPtr: *mut c_void) -> aclError;
    fn aclrtMemcpy(dst: *mut c_void, destMax: usize, src: *const c_void, count: usize, kind: aclrtMemcpyKind) -> aclError;

    fn aclmdlLoadFromFile(modelPath: *const c_char, modelId: *mut u32) -> aclError;
    fn aclmdlUnload(modelId: u32) -> aclError;
    fn aclmdlCreateDesc() -> *mut aclmdlDesc;
    fn aclmdlDestroyDesc(modelDesc: *mut aclmdlDesc) -> aclError;
    fn aclmdlGetDesc(modelDesc: *mut aclmdlDesc, modelId: u32) -> aclError;
    fn aclmdlGetNumInputs(modelDesc: *mut aclmdlDesc) -> usize;
    fn aclmdlGetNumOutputs(modelDesc: *mut aclmdlDesc) -> usize;
    fn aclmdlGetInputSizeByIndex(modelDesc: *mut aclmdlDesc, index: usize) -> usize;
    fn aclmdlGetOutputSizeByIndex(modelDesc: *mut aclmdlDesc, index: usize) -> usize;
    fn aclmdlGetInputDims(modelDesc: *const aclmdlDesc, index: usize, dims: *mut aclmdlIODims) -> aclError;
    fn aclmdlGetOutputDims(modelDesc: *const aclmdlDesc, index: usize, dims: *mut aclmdlIODims) -> aclError;
    fn aclmdlGetInputNameByIndex(modelDesc: *const aclmdlDesc, index: usize) -> *const c_char;
    fn aclmdlGetOutputNameByIndex(modelDesc: *const aclmdlDesc, index: usize) -> *const c_char;
    fn aclmdlGetInputDataType(modelDesc: *const aclmdlDesc, index: usize) -> aclDataType;
    fn aclmdlGetOutputDataType(modelDesc: *const aclmdlDesc, index: usize) -> aclDataType;
    fn aclmdlCreateDataset() -> *mut aclmdlDataset;
    fn aclmdlDestroyDataset(dataset: *const aclmdlDataset) -> aclError;
    fn aclmdlAddDatasetBuffer(dataset: *mut aclmdlDataset, dataBuffer: *mut aclDataBuffer) -> aclError;
    fn aclCreateDataBuffer(data: *mut c_void, size: usize) -> *mut aclDataBuffer;
    fn aclDestroyDataBuffer(dataBuffer: *const aclDataBuffer) -> aclError;
    fn aclmdlExecute(modelId: u32, input: *const aclmdlDataset, output: *mut aclmdlDataset) -> aclError;
}
