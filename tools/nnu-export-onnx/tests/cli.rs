//! Runs the `nnu-export-onnx` binary on the reference model folders (`fixtures/reference`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::prelude::tract_ndarray;

/// A model folder of `fixtures/reference` (made by `scripts/goldens/reference_make.py`).
fn reference(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/reference")
        .join(name)
}

fn tool(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nnu-export-onnx"))
        .args(args)
        .output()
        .expect("runs")
}

fn decode(path: &Path) -> ModelProto {
    let bytes = std::fs::read(path).expect("written");
    tract_onnx::onnx()
        .proto_model_for_read(&mut &bytes[..])
        .expect("valid ONNX")
}

fn read_raw_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .expect("raw f32")
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn exports_a_model_folder_that_reproduces_pytorch() {
    let dir = reference("unet-small");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("unet.onnx");
    let o = tool(&[
        "--model".as_ref(),
        dir.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--batch".as_ref(),
        "1".as_ref(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("Generic_UNet from") && stdout.contains("class [1, 3, 32, 32, 32]"),
        "{stdout}"
    );

    let model = tract_onnx::onnx()
        .model_for_path(&out)
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let input = read_raw_f32(&dir.join("input.bin"));
    let x = tract_ndarray::ArrayD::from_shape_vec(vec![1, 1, 32, 32, 32], input).unwrap();
    let y = model.run(tvec!(Tensor::from(x).into())).unwrap();
    let y = y[0].to_plain_array_view::<f32>().unwrap();
    let expected = read_raw_f32(&dir.join("output_class.bin"));
    let d = y
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("unet-small via nnu-export-onnx: class max abs diff {d:.3e}");
    assert!(d <= 1e-4, "max abs diff {d}");
}

/// An nnunetv2 `2d` configuration is exported as a true 2-D network: input `(1, 1, 32, 32)`, 2-D
/// convolutions, and tract's run of the written file matches PyTorch's output of the 2-D network
/// (fixtures/v2/net/Dataset901_Plain_2d_fold0, scripts/goldens/v2_make.py) within 1e-4.
#[test]
fn exports_a_2d_v2_configuration_as_a_2d_network() {
    let v2 = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/v2");
    let dir = v2.join("models/Dataset901_Plain/nnUNetTrainer__nnUNetPlans__2d");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("model.onnx");
    let o = tool(&[
        "--model".as_ref(),
        dir.as_os_str(),
        "--fold".as_ref(),
        "0".as_ref(),
        "--batch".as_ref(),
        "1".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let proto = decode(&out);
    let graph = proto.graph.as_ref().unwrap();
    let dims: Vec<i64> = graph.input[0]
        .r#type
        .as_ref()
        .and_then(|t| t.value.as_ref())
        .map(|tract_onnx::pb::type_proto::Value::TensorType(t)| {
            t.shape
                .as_ref()
                .unwrap()
                .dim
                .iter()
                .map(|d| match d.value {
                    Some(tract_onnx::pb::tensor_shape_proto::dimension::Value::DimValue(v)) => v,
                    _ => -1,
                })
                .collect()
        })
        .unwrap();
    assert_eq!(dims, [1, 1, 32, 32]);
    for n in graph.node.iter().filter(|n| n.op_type == "Conv") {
        let k = n.attribute.iter().find(|a| a.name == "kernel_shape");
        assert!(k.is_none_or(|k| k.ints.len() == 2), "{n:?}");
    }

    let (shape, input) = read_npy(&v2.join("net/Dataset901_Plain_2d_fold0/input.npy"));
    assert_eq!(shape, [1, 1, 32, 32]);
    let (_, expected) = read_npy(&v2.join("net/Dataset901_Plain_2d_fold0/output.npy"));
    let model = tract_onnx::onnx()
        .model_for_path(&out)
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let x = tract_ndarray::ArrayD::from_shape_vec(shape, input).unwrap();
    let y = model.run(tvec!(Tensor::from(x).into())).unwrap();
    let y = y[0].to_plain_array_view::<f32>().unwrap();
    assert_eq!(y.shape(), [1, 3, 32, 32]);
    let d = y
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("Dataset901_Plain 2d via nnu-export-onnx: max abs diff {d:.3e}");
    assert!(d <= 1e-4, "max abs diff {d}");
}

/// A little-endian f32 C-order `.npy` (version 1): shape and values.
fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).expect("npy");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    assert!(header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"));
    let dims = &header[header.find("'shape': (").unwrap() + 10..];
    let shape = dims[..dims.find(')').unwrap()]
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let data = bytes[10 + len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (shape, data)
}

#[test]
fn deep_supervision_writes_all_heads_in_order() {
    let dir = reference("unetpp-small");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pp.onnx");
    let o = tool(&[
        "--model".as_ref(),
        dir.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--deep-supervision".as_ref(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = decode(&out);
    let g = m.graph.unwrap();
    assert_eq!(m.opset_import[0].version, 11);
    assert_eq!(g.input[0].name, "image");
    let names: Vec<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["class", "head_1", "head_2", "head_3", "head_4"]);
    assert_eq!(
        g.initializer.len(),
        188,
        "one initializer per state_dict key"
    );
}

#[test]
fn random_weights_follow_the_plans() {
    // The reference plans with the reference's base/max/classes give the reference's layout.
    let dir = reference("unetpp-small");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("random.onnx");
    let plans = dir.join("plans.pkl");
    let o = tool(&[
        "--random-weights".as_ref(),
        "--plans".as_ref(),
        plans.as_os_str(),
        "--max".as_ref(),
        "32".as_ref(),
        "--deep-supervision".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ours = decode(&out).graph.unwrap();
    let torch = decode(&dir.join("model_ds.onnx")).graph.unwrap();
    let layout = |g: &tract_onnx::pb::GraphProto| {
        let mut v: Vec<(String, Vec<i64>)> = g
            .initializer
            .iter()
            .map(|t| (t.name.clone(), t.dims.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(layout(&ours), layout(&torch));
}

#[test]
fn errors_name_the_file_and_exit_2() {
    let dir = reference("unet-small");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.onnx");
    let o = tool(&[
        "--model".as_ref(),
        dir.as_os_str(),
        "--fold".as_ref(),
        "3".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("fold_3/model_final_checkpoint.model"),
        "{err}"
    );

    let o = tool(&[
        "--model".as_ref(),
        dir.as_os_str(),
        "--family".as_ref(),
        "unetpp".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("exactly 5 pool kernels"),
        "{err}"
    );

    let o = tool(&[
        "--model".as_ref(),
        dir.as_os_str(),
        "--batch".as_ref(),
        "zero".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("error: --batch"));
    assert!(!out.exists(), "nothing written on failure");

    // An output that cannot be written (its folder is a file): one line naming it, exit 2.
    let file = tmp.path().join("a_file");
    std::fs::write(&file, b"x").unwrap();
    let bad_out = file.join("x.onnx");
    let o = tool(&[
        "--model".as_ref(),
        dir.as_os_str(),
        "-o".as_ref(),
        bad_out.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("a_file"),
        "{err}"
    );

    // A plans file that is not one, and an argument clap refuses.
    let o = tool(&[
        "--random-weights".as_ref(),
        "--plans".as_ref(),
        file.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("a_file"),
        "{err}"
    );
    let o = tool(&[
        "--model".as_ref(),
        dir.as_os_str(),
        "--opset".as_ref(),
        "eleven".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!out.exists(), "nothing written on failure");
}

#[path = "../../readme_synopsis.rs"]
mod readme;

#[test]
fn readme_synopsis_matches_help() {
    readme::check(env!("CARGO_BIN_EXE_nnu-export-onnx"), "nnu-export-onnx");
}
