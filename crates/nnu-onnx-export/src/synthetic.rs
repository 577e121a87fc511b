//! Synthetic state_dicts: the exact key set and shapes the PyTorch constructors register, with
//! seeded He-initialised weights, so benches can use a real-size network without a checkpoint.

use crate::error::Result;
use crate::spec::{Family, NetworkSpec};
use crate::state_dict::StateDict;

/// The constructor arguments that fix channel counts (everything else comes from the plans).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticConfig {
    /// `num_input_channels` (modalities; default 1).
    pub input_channels: usize,
    /// `base_num_features` (default 32, nnU-Net v1's 3D default).
    pub base_num_features: usize,
    /// `max_num_features` (default 320, `MAX_NUM_FILTERS_3D`).
    pub max_num_features: usize,
    /// Network outputs per head, background included (default 3, Task003 liver and tumour).
    pub num_classes: usize,
    /// Seed of the weight generator (default 0).
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            input_channels: 1,
            base_num_features: 32,
            max_num_features: 320,
            num_classes: 3,
            seed: 0,
        }
    }
}

/// How a tensor is initialised.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Init {
    /// `nn.init.kaiming_normal_(w, a=1e-2)`: N(0, gain^2 / fan_in), gain = sqrt(2 / (1 + a^2)),
    /// fan_in = `shape[1] * prod(kernel)` (PyTorch's rule, also for transposed convs).
    He,
    Zeros,
    Ones,
}

struct Collector {
    items: Vec<(String, Vec<usize>, Init)>,
}

impl Collector {
    fn block(&mut self, prefix: &str, cin: usize, cout: usize, k: &[usize]) {
        let mut w = vec![cout, cin];
        w.extend_from_slice(k);
        self.items
            .push((format!("{prefix}.conv.weight"), w, Init::He));
        self.items
            .push((format!("{prefix}.conv.bias"), vec![cout], Init::Zeros));
        self.items
            .push((format!("{prefix}.instnorm.weight"), vec![cout], Init::Ones));
        self.items
            .push((format!("{prefix}.instnorm.bias"), vec![cout], Init::Zeros));
    }

    fn stack(&mut self, prefix: &str, cin: usize, cout: usize, n: usize, k: &[usize]) {
        for i in 0..n.max(1) {
            self.block(
                &format!("{prefix}.blocks.{i}"),
                if i == 0 { cin } else { cout },
                cout,
                k,
            );
        }
    }

    fn weight(&mut self, key: String, shape: Vec<usize>) {
        self.items.push((key, shape, Init::He));
    }
}

/// Feature counts of the encoder levels and the bottleneck, computed as the constructors do:
/// start at `base`, multiply by 2 per pooling (`feat_map_mul_on_downscale`), cap at `max`.
fn encoder_features(num_pool: usize, cfg: &SyntheticConfig) -> Vec<usize> {
    let mut f = Vec::with_capacity(num_pool + 1);
    let mut out = cfg.base_num_features;
    for _ in 0..=num_pool {
        f.push(out);
        out = (out * 2).min(cfg.max_num_features);
    }
    f
}

fn collect(spec: &NetworkSpec, cfg: &SyntheticConfig) -> Result<Vec<(String, Vec<usize>, Init)>> {
    spec.validate()?;
    let np = spec.num_pool();
    let cps = spec.conv_per_stage;
    let f = encoder_features(np, cfg);
    let ones = vec![1; spec.ndim()];

    let mut ctx = Collector { items: Vec::new() };
    for d in 0..np {
        let cin = if d == 0 { cfg.input_channels } else { f[d - 1] };
        ctx.stack(
            &format!("conv_blocks_context.{d}"),
            cin,
            f[d],
            cps,
            &spec.conv_kernel_sizes[d],
        );
    }
    let kb = &spec.conv_kernel_sizes[np];
    ctx.stack(
        &format!("conv_blocks_context.{np}.0"),
        f[np - 1],
        f[np],
        cps - 1,
        kb,
    );
    ctx.stack(&format!("conv_blocks_context.{np}.1"), f[np], f[np], 1, kb);

    let mut loc = Collector { items: Vec::new() };
    let mut up = Collector { items: Vec::new() };
    let mut seg = Collector { items: Vec::new() };
    let head = |c: &mut Collector, i: usize, cin: usize| {
        let mut s = vec![cfg.num_classes, cin];
        s.extend_from_slice(&ones);
        c.weight(format!("seg_outputs.{i}.weight"), s);
    };
    match spec.family {
        Family::Unet => {
            let mut down = f[np];
            for u in 0..np {
                let level = np - 1 - u;
                let skip = f[level];
                let mut w = vec![down, skip];
                w.extend_from_slice(&spec.pool_op_kernel_sizes[level]);
                up.weight(format!("tu.{u}.weight"), w);
                let k = &spec.conv_kernel_sizes[level + 1];
                let p = format!("conv_blocks_localization.{u}");
                loc.stack(&format!("{p}.0"), 2 * skip, skip, cps - 1, k);
                loc.stack(&format!("{p}.1"), skip, skip, 1, k);
                head(&mut seg, u, skip);
                down = skip;
            }
        }
        Family::UnetPlusPlus => {
            // create_nest(z, ...): nodes u = z..num_pool, level 4 - u, fed by the nest's running
            // feature count (starting at the bottleneck for z = 0, at f[np - z] otherwise).
            for z in 0..np {
                let mut down = f[np - z];
                for (k, u) in (z..np).enumerate() {
                    let level = np - 1 - u;
                    let skip = f[level];
                    let mut w = vec![down, skip];
                    w.extend_from_slice(&spec.pool_op_kernel_sizes[level]);
                    up.weight(format!("up{z}.{k}.weight"), w);
                    let kern = &spec.conv_kernel_sizes[level + 1];
                    let p = format!("loc{z}.{k}");
                    loc.stack(&format!("{p}.0"), skip * (2 + u - z), skip, cps - 1, kern);
                    loc.stack(&format!("{p}.1"), skip, skip, 1, kern);
                    down = skip;
                }
            }
            for i in 0..np {
                head(&mut seg, i, f[0]);
            }
        }
    }
    // state_dict order = module registration order at the end of __init__.
    Ok([loc, ctx, up, seg]
        .into_iter()
        .flat_map(|c| c.items)
        .collect())
}

/// The `(key, shape)` list the PyTorch constructor registers for `spec` and `cfg`, in state_dict
/// order (`loc0..loc4` or `conv_blocks_localization`, then `conv_blocks_context`, `up0..up4` or
/// `tu`, `seg_outputs`), assuming the V2 trainers' settings (convolutional pooling and
/// upsampling, affine instance norm, heads without bias).
pub fn synthetic_shapes(
    spec: &NetworkSpec,
    cfg: &SyntheticConfig,
) -> Result<Vec<(String, Vec<usize>)>> {
    Ok(collect(spec, cfg)?
        .into_iter()
        .map(|(k, s, _)| (k, s))
        .collect())
}

/// SplitMix64: a tiny, well-mixed generator; enough for synthetic weights.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn next_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn next_normal(&mut self) -> f64 {
        let (u1, u2) = (self.next_unit(), self.next_unit());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// A state_dict with the keys and shapes of [`synthetic_shapes`] and the values nnU-Net's
/// `InitWeights_He(1e-2)` would draw from (conv and transposed-conv weights He-normal, conv
/// biases 0, instance-norm scale 1 and shift 0), from a seeded generator instead of torch's.
/// Deterministic for a given seed.
pub fn synthetic_state_dict(spec: &NetworkSpec, cfg: &SyntheticConfig) -> Result<StateDict> {
    let gain = (2.0 / (1.0 + 1e-4f64)).sqrt();
    let mut sd = StateDict::new();
    for (i, (key, shape, init)) in collect(spec, cfg)?.into_iter().enumerate() {
        let n: usize = shape.iter().product();
        let data = match init {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::He => {
                let fan_in: usize = shape[1..].iter().product();
                let std = gain / (fan_in as f64).sqrt();
                let mut rng = SplitMix64(cfg.seed ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407));
                (0..n).map(|_| (rng.next_normal() * std) as f32).collect()
            }
        };
        sd.insert(key, shape, data)?;
    }
    Ok(sd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normals_have_unit_variance() {
        let mut r = SplitMix64(7);
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|_| r.next_normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }

    #[test]
    fn encoder_features_cap_at_max() {
        let cfg = SyntheticConfig::default();
        assert_eq!(encoder_features(5, &cfg), vec![32, 64, 128, 256, 320, 320]);
    }
}
