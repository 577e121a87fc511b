//! The listing of an nnunetv2 model folder (`plans.json`, `dataset.json`, `fold_K/checkpoint_*.pth`).

use nnu_artifacts::v2::{num_parameters_v2, LabelValue, V2ModelFolder, CHECKPOINT_FINAL};
use nnu_artifacts::Checkpoint;

/// Loads each fold's `checkpoint_final.pth` (`checkpoint_best.pth` where only that exists).
pub fn load_checkpoints(
    model: &V2ModelFolder,
) -> Result<Vec<Option<Checkpoint>>, nnu_artifacts::Error> {
    model
        .folds
        .iter()
        .map(|f| {
            match f
                .checkpoint(CHECKPOINT_FINAL)
                .or(f.checkpoint_best.as_deref())
            {
                Some(p) => Checkpoint::load(p).map(Some),
                None => Ok(None),
            }
        })
        .collect()
}

/// The text `nnu-inspect` prints for a v2 model.
pub fn describe(
    model: &V2ModelFolder,
    checkpoints: &[Option<Checkpoint>],
) -> Result<String, nnu_artifacts::Error> {
    let p = &model.plans;
    let ds = &model.dataset;
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<22}{v}\n"));
    line("model folder", model.dir.display().to_string());
    line(
        "format",
        format!(
            "nnunetv2 (plans {}, dataset {})",
            p.plans_name, p.dataset_name
        ),
    );
    let info = checkpoints.iter().flatten().find_map(|c| c.v2.clone());
    let trained = info.as_ref().and_then(|i| i.configuration.clone());
    let trainer = info
        .as_ref()
        .and_then(|i| i.trainer_name.clone())
        .unwrap_or_else(|| "unknown (no checkpoint read)".into());
    line("trainer", trainer);
    let cfg_name = trained
        .clone()
        .unwrap_or_else(|| nnu_artifacts::v2::DEFAULT_CONFIGURATION.to_owned());
    line(
        "configurations",
        format!(
            "{} (this model: {cfg_name})",
            p.configuration_names.join(", ")
        ),
    );
    if ds.has_regions() {
        let regions: Vec<String> = ds
            .regions()
            .iter()
            .map(|(n, r)| format!("{n} {r:?}"))
            .collect();
        line(
            "regions",
            format!(
                "{} sigmoid outputs: {}; regions_class_order {:?}",
                regions.len(),
                regions.join(", "),
                ds.regions_class_order.clone().unwrap_or_default()
            ),
        );
    } else {
        let labels: Vec<String> = ds
            .labels
            .0
            .iter()
            .map(|(n, v)| match v {
                LabelValue::Label(l) => format!("{l} {n}"),
                LabelValue::Region(r) => format!("{r:?} {n}"),
            })
            .collect();
        line(
            "classes",
            format!(
                "{} softmax outputs: {}",
                ds.num_segmentation_heads(),
                labels.join(", ")
            ),
        );
    }
    let cfg = p.configuration(&cfg_name)?;
    if let Some(prev) = &cfg.previous_stage {
        // LabelManager.foreground_labels: every label value but the background and `ignore`.
        let mut fg: Vec<i64> = Vec::new();
        for (_, v) in ds.labels.0.iter().filter(|(n, _)| n != "ignore") {
            match v {
                LabelValue::Label(l) => fg.push(*l),
                LabelValue::Region(r) => fg.extend(r.iter().copied()),
            }
        }
        fg.sort_unstable();
        fg.dedup();
        fg.retain(|&l| l != 0);
        line(
            "cascade",
            format!(
                "stage after {prev}: needs the {prev} segmentation of each case, one-hot as {} extra input \
                 channel(s) (labels {fg:?}); nnu-predict -c {cfg_name} --prev-stage DIR, or --lowres-model \
                 DIR to predict {prev} first",
                fg.len()
            ),
        );
    } else if !cfg.next_stage.is_empty() {
        line(
            "cascade",
            format!(
                "first stage: its segmentations are the input of {}",
                cfg.next_stage.join(", ")
            ),
        );
    }
    line("patch size", format!("{:?}", cfg.patch_size));
    line(
        "spacing",
        format!("{:?} (target, transposed axis order)", cfg.spacing),
    );
    line(
        "original spacing",
        format!("{:?}", p.original_median_spacing_after_transp),
    );
    let net = cfg.network()?;
    line(
        "network",
        format!(
            "{} ({}-D), features {:?}",
            net.class.name(),
            net.ndim,
            net.features_per_stage
        ),
    );
    line("strides", format!("{:?}", net.strides));
    line("kernels", format!("{:?}", net.kernel_sizes));
    line(
        "convs per stage",
        format!(
            "encoder {:?}, decoder {:?}",
            net.n_conv_per_stage, net.n_conv_per_stage_decoder
        ),
    );
    line(
        "transpose",
        format!(
            "forward {:?}, backward {:?}",
            p.transpose_forward, p.transpose_backward
        ),
    );
    line(
        "resampling",
        format!(
            "data order {} (z {}), probabilities order {} (z {})",
            cfg.resampling_fn_data.1.order,
            cfg.resampling_fn_data.1.order_z,
            cfg.resampling_fn_probabilities.1.order,
            cfg.resampling_fn_probabilities.1.order_z
        ),
    );
    for (c, scheme) in cfg.normalization_schemes.iter().enumerate() {
        let mut v = format!(
            "{}: scheme {scheme}, mask for norm {}",
            ds.channel_names.get(&c).map_or("?", String::as_str),
            cfg.use_mask_for_norm.get(c).copied().unwrap_or(false),
        );
        if let Some(ip) = p.foreground_intensity_properties_per_channel.get(&c) {
            v.push_str(&format!(
                ", clip [{}, {}], mean {}, std {}",
                ip.percentile_00_5, ip.percentile_99_5, ip.mean, ip.std
            ));
        }
        line(&format!("channel {c}"), v);
    }
    if let Some(axes) = info
        .as_ref()
        .map(|i| i.inference_allowed_mirroring_axes.clone())
    {
        line(
            "mirroring axes",
            axes.map_or_else(|| "none".to_string(), |a| format!("{a:?}")),
        );
    }
    let folds: Vec<&str> = model.folds.iter().map(|f| f.name.as_str()).collect();
    line("folds", folds.join(", "));
    for (f, c) in model.folds.iter().zip(checkpoints) {
        let mut files = Vec::new();
        if f.checkpoint_final.is_some() {
            files.push("checkpoint_final.pth");
        }
        if f.checkpoint_best.is_some() {
            files.push("checkpoint_best.pth");
        }
        if f.onnx.is_some() {
            files.push("model.onnx");
        }
        let text = match c {
            Some(c) => format!(
                "{} parameters{} ({})",
                num_parameters_v2(c),
                c.epoch.map(|e| format!(", epoch {e}")).unwrap_or_default(),
                files.join(", ")
            ),
            None => files.join(", "),
        };
        line(&format!("  {}", f.name), text);
    }
    Ok(s)
}
