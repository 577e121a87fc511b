//! Optional cross-check with the Python ONNX stack: `onnx.checker.check_model(full_check=True)` and
//! onnxruntime inference against PyTorch's outputs (1e-4 max abs), including a batch of two
//! through the dynamic batch axis. Ignored by default (Python is never needed to test); run it with
//! `cargo test -p nnu-onnx-export --test python_check -- --ignored` where a Python with `onnx` and
//! `onnxruntime` is found (`/work/venv/bin/python`, then `python3`); it fails when none is.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use nnu_onnx_export::{export_model, ExportOptions};

const SCRIPT: &str = r#"
import sys
import numpy as np
import onnx
import onnxruntime as ort

path, ref_dir = sys.argv[1], sys.argv[2]
onnx.checker.check_model(onnx.load(path), full_check=True)
sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
x = np.load(ref_dir + "/input.npy")
outs = sess.run(None, {"image": np.concatenate([x, x])})
worst = 0.0
for k, o in enumerate(outs):
    ref = np.load(ref_dir + f"/output_{k}.npy")
    d = max(float(np.abs(o[b:b + 1] - ref).max()) for b in range(2))
    worst = max(worst, d)
    print(f"{path}: output_{k} {sess.get_outputs()[k].name} onnxruntime max abs diff {d:.3e}")
sys.exit(0 if worst <= 1e-4 else 1)
"#;

fn python() -> Option<PathBuf> {
    for cand in ["/work/venv/bin/python", "python3"] {
        let ok = Command::new(cand)
            .args(["-c", "import onnx, onnxruntime"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return Some(PathBuf::from(cand));
        }
    }
    None
}

fn check(
    py: &Path,
    label: &str,
    dir: &Path,
    spec: nnu_onnx_export::NetworkSpec,
    sd: nnu_onnx_export::StateDict,
) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(format!("{label}.onnx"));
    let opts = ExportOptions {
        deep_supervision: true,
        ..Default::default()
    };
    export_model(&spec, sd, &opts)
        .unwrap()
        .write(&path)
        .unwrap();
    let out = Command::new(py)
        .arg("-c")
        .arg(SCRIPT)
        .arg(&path)
        .arg(dir)
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "{label}: onnx checker / onnxruntime failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs a Python with onnx and onnxruntime (/work/venv/bin/python or python3): cargo test -- --ignored"]
fn onnx_checker_and_onnxruntime_accept_the_exports() {
    let py = python().expect(
        "no Python with the onnx and onnxruntime packages (tried /work/venv/bin/python, python3)",
    );
    for name in ["unetpp-small", "unet-small"] {
        let dir = reference(name);
        let sd = state_dict_from_torch_onnx(&dir.join("model_ds.onnx"));
        check(&py, name, &dir, spec_from_meta(&dir), sd);
    }
    for name in ["unet_aniso_3conv", "unetpp_aniso_1conv", "unetpp_2d"] {
        let dir = fixtures().join(name);
        let sd = state_dict_from_torch_onnx(&dir.join("model.onnx"));
        check(&py, name, &dir, spec_from_meta(&dir), sd);
    }
}
