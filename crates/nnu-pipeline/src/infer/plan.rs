//! Planning a run: listing the inputs, naming their dumps, skipping the complete ones.

use super::*;

pub(super) fn input_err(path: &Path, msg: impl Into<String>) -> PipelineError {
    PipelineError::Input {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// The file stem of an input (`NAME` of `NAME.bin`).
pub(super) fn stem(path: &Path) -> Result<&str, PipelineError> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| input_err(path, "input file name is not UTF-8"))
}

pub(super) fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

impl InferPlan {
    /// Lists the inputs, checks that none is listed twice under one dump name, and skips those whose
    /// dump already exists with the size `backend`'s output needs (unless `options.overwrite`).
    pub fn new(
        input: &InferInput,
        options: &InferOptions,
        backend: &dyn Backend,
    ) -> Result<Self, PipelineError> {
        let [z, y, x] = backend.patch_size();
        let input_shape = [1, backend.input_channels(), z, y, x];
        let output_shape = [1, backend.num_classes(), z, y, x];
        let (inputs, seed) = match input {
            InferInput::BinDir(dir) => {
                if let Some(out) = &options.output_dir {
                    if same_folder(dir, out) {
                        return Err(input_err(
                            out,
                            "the dump folder is the input folder; dumps would be read as inputs",
                        ));
                    }
                }
                let paths = list_bins(dir)?;
                if paths.is_empty() {
                    return Err(input_err(dir, "no .bin files in this folder"));
                }
                (paths.into_iter().map(Some).collect::<Vec<_>>(), 0)
            }
            InferInput::Info(info) => {
                let entries = read_info(info)?;
                if entries.is_empty() {
                    return Err(input_err(info, "the .info file lists no inputs"));
                }
                let base = info.parent().unwrap_or(Path::new(""));
                let paths = entries
                    .into_iter()
                    .map(|e| {
                        let p = PathBuf::from(&e.path);
                        if p.is_relative() && !p.exists() && base.join(&p).exists() {
                            Some(base.join(p))
                        } else {
                            Some(p)
                        }
                    })
                    .collect();
                (paths, 0)
            }
            InferInput::Random { count, seed } => (vec![None; *count], *seed),
        };

        let needs_output = inputs.iter().any(Option::is_some);
        let out_dir = match (&options.output_dir, needs_output) {
            (Some(d), _) => Some(d.clone()),
            (None, false) => None,
            (None, true) => {
                return Err(input_err(
                    Path::new("."),
                    "an output folder is required for file inputs",
                ))
            }
        };
        let expected = nnu_bins::tile::file_len(&output_shape);
        let mut seen = std::collections::HashMap::new();
        let mut tasks = Vec::with_capacity(inputs.len());
        let mut skipped = 0;
        for input in inputs {
            let output = match (&input, &out_dir) {
                (Some(path), Some(dir)) => {
                    let name = options.naming.file_name(stem(path)?, 0);
                    if let Some(other) = seen.insert(name.clone(), path.clone()) {
                        return Err(input_err(
                            path,
                            format!("has the same dump name {name} as {}", other.display()),
                        ));
                    }
                    Some(dir.join(name))
                }
                _ => None,
            };
            if let Some(out) = &output {
                let done = std::fs::metadata(out)
                    .map(|m| m.len() == expected)
                    .unwrap_or(false);
                if done && !options.overwrite {
                    skipped += 1;
                    continue;
                }
            }
            tasks.push(InferTask { input, output });
        }
        Ok(InferPlan {
            tasks,
            skipped,
            seed,
            input_shape,
            output_shape,
            output_dir: out_dir,
            naming: options.naming,
            warmup: options.warmup,
        })
    }

    /// The inputs that will run, in order.
    pub fn tasks(&self) -> &[InferTask] {
        &self.tasks
    }

    /// Number of inputs skipped because their dump is complete.
    pub fn skipped(&self) -> usize {
        self.skipped
    }
}
