//! Synthetic abdominal CT phantoms with liver and tumour labels, for tests, benches and the demo (real
//! MSD data cannot be downloaded here).
//!
//! A phantom is an int16 CT in Hounsfield units with its label map (0 background, 1 liver, 2 tumour):
//! air at -1024 around an elliptic-cylinder body with a subcutaneous fat layer (about -100 HU), soft
//! tissue (about 40 HU), a smooth deformed liver (55 to 68 HU) on the patient's right with 0 to 3 tumours
//! (22 to 35 HU darker than the liver), a spleen-like distractor (45 to 55 HU) on the left, a bright spine
//! and ribs (400 to 900 HU), and Gaussian-like noise. The anatomy is placed in world (LPS) coordinates and
//! scaled to the field of view, so any shape, spacing (including 5 mm slices) and direction (including
//! flipped axes) gives a plausible image, and a flipped axis mirrors the array as it would for a real scan.
//! Everything is a pure function of the [`PhantomSpec`] (its seed included): the same spec gives the same
//! bytes on any number of threads.
//!
//! ```
//! use nnu_synth::{generate, PhantomSpec};
//!
//! let spec = PhantomSpec::new([24, 64, 64], [5.0, 2.0, 2.0], 7);
//! let p = generate(&spec).unwrap();
//! assert_eq!(p.image.data.dim(), (24, 64, 64));
//! assert_eq!(p.image.data[[0, 0, 0]], -1024); // air in the corner
//! assert!(p.labels.data.iter().any(|&l| l == 1)); // there is a liver
//! assert_eq!(p.image.geometry.spacing_zyx(), [5.0, 2.0, 2.0]);
//! ```
//!
//! [`Anatomy::Full`] (opt-in; [`Anatomy::Basic`] is the default and its output is unchanged) adds what makes
//! a slice read like a portal-venous abdominal CT: a muscle wall under the fat (thicker at the back), two
//! kidneys (enhancing cortex, darker medulla) behind the liver's lower half, the aorta in front of the
//! spine, branching hepatic vessels brighter than the liver parenchyma (labelled liver, as in LiTS), and
//! tumours of more sizes and contrasts (some with a darker necrotic core). Its extra random choices come
//! from a second generator, so a seed gives the same body, liver and tumour positions at both levels.
//!
//! Not here: realistic texture, contrast phases or other organs' labels; the phantoms only need to be
//! learnable by a small network and to exercise the pipeline's geometry handling.

#![warn(missing_docs)]
// Geometry code reads best in index notation.
#![allow(clippy::needless_range_loop)]

use std::path::{Path, PathBuf};

use ndarray::{Array3, Axis};
use nnu_volume::{Geometry, Volume, VolumeError, WriteOptions};
use rayon::prelude::*;

/// Errors of phantom generation and dataset writing.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A [`PhantomSpec`] field is unusable.
    #[error("invalid phantom spec: {field} = {value}: {reason}")]
    InvalidSpec {
        /// The field.
        field: &'static str,
        /// Its value, printed.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// Writing a volume failed.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// Creating a folder or writing `dataset.json` failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// What to generate. Fields are public; [`PhantomSpec::new`] fills the defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct PhantomSpec {
    /// Array shape (z, y, x).
    pub shape_zyx: [usize; 3],
    /// Voxel spacing in mm, (z, y, x).
    pub spacing_zyx: [f64; 3],
    /// Direction cosines as SimpleITK's `GetDirection()` (row-major, LPS, columns = x, y, z axes).
    /// Default identity.
    pub direction: [f64; 9],
    /// World position of voxel (0, 0, 0); `None` (default) puts the volume's centre at the world origin.
    pub origin: Option<[f64; 3]>,
    /// Seed of every random choice.
    pub seed: u64,
    /// Standard deviation of the voxel noise in HU. Default 12.
    pub noise_sd: f32,
    /// Upper bound on the number of tumours (each case draws 0..=max). Default 3.
    pub max_tumours: u32,
    /// Which structures are drawn. Default [`Anatomy::Basic`].
    pub anatomy: Anatomy,
}

/// How much anatomy a phantom has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Anatomy {
    /// Body, fat, soft tissue, liver with tumours, a spleen-like distractor, spine and ribs (the phantoms
    /// every committed fixture was made from).
    #[default]
    Basic,
    /// [`Anatomy::Basic`] plus a muscle wall, kidneys, the aorta, hepatic vessels, and tumours of more
    /// sizes and contrasts.
    Full,
}

impl PhantomSpec {
    /// A spec with identity direction, centred origin, noise 12 HU and up to 3 tumours.
    pub fn new(shape_zyx: [usize; 3], spacing_zyx: [f64; 3], seed: u64) -> Self {
        PhantomSpec {
            shape_zyx,
            spacing_zyx,
            direction: Geometry::default().direction,
            origin: None,
            seed,
            noise_sd: 12.0,
            max_tumours: 3,
            anatomy: Anatomy::Basic,
        }
    }

    /// The spec with image axis `axis` (0 = x, 1 = y, 2 = z, ITK order) pointing the other way.
    pub fn flipped(mut self, axis: usize) -> Self {
        if axis < 3 {
            for r in 0..3 {
                self.direction[3 * r + axis] = -self.direction[3 * r + axis];
            }
        }
        self
    }

    fn validate(&self) -> Result<(), SynthError> {
        let bad = |field, value: String, reason| {
            Err(SynthError::InvalidSpec {
                field,
                value,
                reason,
            })
        };
        if self.shape_zyx.iter().any(|&n| n == 0 || n > 32767) {
            return bad(
                "shape_zyx",
                format!("{:?}", self.shape_zyx),
                "sizes must be in 1..=32767",
            );
        }
        if self
            .spacing_zyx
            .iter()
            .any(|&s| !(s.is_finite() && s > 0.0))
        {
            return bad(
                "spacing_zyx",
                format!("{:?}", self.spacing_zyx),
                "spacings must be positive",
            );
        }
        let d = &self.direction;
        for c in 0..3 {
            let n = (d[c] * d[c] + d[3 + c] * d[3 + c] + d[6 + c] * d[6 + c]).sqrt();
            if !n.is_finite() || (n - 1.0).abs() > 1e-3 {
                return bad(
                    "direction",
                    format!("{d:?}"),
                    "columns must be unit vectors",
                );
            }
        }
        if !self.noise_sd.is_finite() || self.noise_sd < 0.0 {
            return bad("noise_sd", self.noise_sd.to_string(), "must be >= 0");
        }
        Ok(())
    }
}

/// A generated case.
#[derive(Clone, Debug)]
pub struct Phantom {
    /// CT in HU, (z, y, x).
    pub image: Volume<i16>,
    /// 0 background, 1 liver, 2 tumour; same geometry.
    pub labels: Volume<u8>,
    /// Number of tumours placed (some may be tiny after clipping to the field of view).
    pub tumours: usize,
}

/// SplitMix64: the PRNG of every random choice (Steele, Lea, Flood 2014).
#[derive(Clone, Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// SplitMix64's finaliser: a good 64-bit hash, used directly for per-voxel noise.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Approximately standard normal noise for voxel `index`: the sum of four 16-bit uniforms (Irwin-Hall),
/// centred and scaled to unit variance. Cheap, and a pure function of (seed, index).
#[inline(always)]
fn noise(seed: u64, index: u64) -> f32 {
    let h = mix(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let s = (h & 0xffff) + ((h >> 16) & 0xffff) + ((h >> 32) & 0xffff) + (h >> 48);
    // mean 4 * 32767.5, variance 4 * (65536^2 - 1) / 12
    (s as f32 - 131_070.0) * (1.0 / 37_837.2)
}

/// A smooth deformed ellipsoid: inside where `|A (p - c)|^2 + sum_k a_k sin(w_k . p + phi_k) < 1`.
#[derive(Clone, Debug)]
struct Blob {
    centre: [f64; 3],
    inv_radii: [f64; 3],
    waves: Vec<([f64; 3], f64, f64)>,
    /// World-space bounding box (with margin for the deformation).
    lo: [f64; 3],
    hi: [f64; 3],
}

impl Blob {
    fn new(rng: &mut SplitMix, centre: [f64; 3], radii: [f64; 3], wobble: f64) -> Blob {
        let mean_r = (radii[0] + radii[1] + radii[2]) / 3.0;
        let waves = (0..4)
            .map(|_| {
                // wavelengths around the blob size: low-frequency lobes
                let k = 2.0 * std::f64::consts::PI / (mean_r * rng.uniform(1.2, 2.5));
                let (t, p) = (
                    rng.uniform(0.0, std::f64::consts::PI),
                    rng.uniform(0.0, 2.0 * std::f64::consts::PI),
                );
                let w = [k * t.sin() * p.cos(), k * t.sin() * p.sin(), k * t.cos()];
                (
                    w,
                    rng.uniform(0.0, 2.0 * std::f64::consts::PI),
                    wobble * rng.uniform(0.5, 1.0),
                )
            })
            .collect::<Vec<_>>();
        let amp: f64 = waves.iter().map(|w| w.2).sum();
        let grow = (1.0 + amp).sqrt();
        let lo = [0, 1, 2].map(|i| centre[i] - radii[i] * grow);
        let hi = [0, 1, 2].map(|i| centre[i] + radii[i] * grow);
        Blob {
            centre,
            inv_radii: radii.map(|r| 1.0 / r),
            waves,
            lo,
            hi,
        }
    }

    /// < 1 inside.
    #[inline]
    fn level(&self, p: [f64; 3]) -> f64 {
        let mut q = 0.0;
        for i in 0..3 {
            let d = (p[i] - self.centre[i]) * self.inv_radii[i];
            q += d * d;
        }
        for (w, phi, a) in &self.waves {
            q += a * (w[0] * p[0] + w[1] * p[1] + w[2] * p[2] + phi).sin();
        }
        q
    }

    #[inline]
    fn in_box(&self, p: [f64; 3]) -> bool {
        (0..3).all(|i| p[i] >= self.lo[i] && p[i] <= self.hi[i])
    }

    #[inline]
    fn contains(&self, p: [f64; 3]) -> bool {
        self.in_box(p) && self.level(p) < 1.0
    }
}

/// Per-case anatomy in world (LPS) millimetres.
#[derive(Clone, Debug)]
struct Scene {
    centre: [f64; 3],
    body: [f64; 2],
    fat: f64,
    liver: Blob,
    spleen: Blob,
    tumours: Vec<Blob>,
    /// (x, y, radius, HU) of bone cylinders along z.
    bones: Vec<(f64, f64, f64, f32)>,
    hu_tissue: f32,
    hu_fat: f32,
    hu_liver: f32,
    hu_spleen: f32,
    hu_tumour: Vec<f32>,
    z_grad: f32,
    /// The structures of [`Anatomy::Full`]; `None` for [`Anatomy::Basic`].
    extra: Option<Extra>,
}

/// A tube: the segment from `a` to `b` with radius `r` (mm).
#[derive(Clone, Debug)]
struct Tube {
    a: [f64; 3],
    b: [f64; 3],
    r: f64,
}

impl Tube {
    #[inline]
    fn contains(&self, p: [f64; 3]) -> bool {
        let ab = [0, 1, 2].map(|i| self.b[i] - self.a[i]);
        let ap = [0, 1, 2].map(|i| p[i] - self.a[i]);
        let len2 = ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2];
        let t = if len2 > 0.0 {
            ((ap[0] * ab[0] + ap[1] * ab[1] + ap[2] * ab[2]) / len2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let d2: f64 = (0..3).map(|i| (ap[i] - t * ab[i]).powi(2)).sum();
        d2 < self.r * self.r
    }
}

/// The structures [`Anatomy::Full`] adds to a [`Scene`].
#[derive(Clone, Debug)]
struct Extra {
    /// Muscle wall thickness (mm) at the front; it grows towards the back.
    muscle: f64,
    hu_muscle: f32,
    /// The soft tissue between the organs (bowel and mesentery), darker than the muscle.
    hu_gut: f32,
    kidneys: Vec<Blob>,
    hu_cortex: f32,
    hu_medulla: f32,
    /// (x, y, radius) of the aorta, along z.
    aorta: (f64, f64, f64),
    hu_aorta: f32,
    vessels: Vec<Tube>,
    hu_vessel: f32,
    /// Per tumour: the HU of its necrotic core, if it has one.
    cores: Vec<Option<f32>>,
}

impl Scene {
    fn new(spec: &PhantomSpec, geometry: &Geometry) -> Scene {
        let mut rng = SplitMix(spec.seed ^ 0x0005_EED0_FA11_5EED);
        // world extent of the field of view and its centre
        let n = [spec.shape_zyx[2], spec.shape_zyx[1], spec.shape_zyx[0]];
        let mut ext = [0.0f64; 3];
        for (k, e) in ext.iter_mut().enumerate() {
            for c in 0..3 {
                *e += geometry.direction[3 * k + c].abs() * geometry.spacing[c] * n[c] as f64;
            }
        }
        let centre = geometry.index_to_world_zyx([
            (spec.shape_zyx[0] as f64 - 1.0) / 2.0,
            (spec.shape_zyx[1] as f64 - 1.0) / 2.0,
            (spec.shape_zyx[2] as f64 - 1.0) / 2.0,
        ]);
        let body = [
            0.44 * ext[0] * rng.uniform(0.9, 1.0),
            0.36 * ext[1] * rng.uniform(0.85, 1.0),
        ];
        let fat = rng.uniform(0.06, 0.12) * body[0].min(body[1]);
        let (rx, ry, ez) = (body[0], body[1], ext[2]);
        // liver: patient's right (LPS -x), slightly anterior (-y), upper half of the field
        let liver_r = [
            0.42 * rx * rng.uniform(0.85, 1.15),
            0.55 * ry * rng.uniform(0.85, 1.15),
            (0.32 * ez).min(1.2 * 0.42 * rx) * rng.uniform(0.85, 1.15),
        ];
        let liver_c = [
            centre[0] - 0.42 * rx + rng.uniform(-0.05, 0.05) * rx,
            centre[1] - 0.08 * ry + rng.uniform(-0.05, 0.05) * ry,
            centre[2] + rng.uniform(-0.1, 0.15) * ez,
        ];
        let liver = Blob::new(&mut rng, liver_c, liver_r, 0.25);
        let spleen_r = [0.16 * rx, 0.22 * ry, (0.18 * ez).min(0.5 * 0.42 * rx)]
            .map(|r| r * rng.uniform(0.8, 1.2));
        let spleen_c = [
            centre[0] + 0.5 * rx,
            centre[1] + 0.35 * ry,
            liver_c[2] + rng.uniform(-0.05, 0.05) * ez,
        ];
        let spleen = Blob::new(&mut rng, spleen_c, spleen_r, 0.2);
        let hu_liver = rng.uniform(55.0, 68.0) as f32;
        let n_tumours = (rng.next() % (u64::from(spec.max_tumours) + 1)) as usize;
        let min_sp = spec
            .spacing_zyx
            .iter()
            .cloned()
            .fold(f64::INFINITY, f64::min);
        let max_sp = spec.spacing_zyx.iter().cloned().fold(0.0, f64::max);
        let mut tumours = Vec::new();
        let mut hu_tumour = Vec::new();
        let small = liver_r.iter().cloned().fold(f64::INFINITY, f64::min);
        for _ in 0..n_tumours {
            // a centre well inside the liver (rejection sampling; the liver is never empty)
            let mut c = liver_c;
            for _ in 0..64 {
                let cand = [0, 1, 2].map(|i| liver_c[i] + liver_r[i] * rng.uniform(-0.6, 0.6));
                if liver.level(cand) < 0.45 {
                    c = cand;
                    break;
                }
            }
            // Full: the same draw spread over a wider range of sizes (0.07 to 0.40 of the liver's
            // smallest radius), so a case can hold a small lesion next to a large one.
            let rel = match spec.anatomy {
                Anatomy::Basic => rng.uniform(0.12, 0.35),
                Anatomy::Full => rng.uniform(0.07, 0.40),
            };
            let r = (small * rel).max(2.0 * max_sp).max(3.0 * min_sp);
            let radii = [
                r * rng.uniform(0.8, 1.2),
                r * rng.uniform(0.8, 1.2),
                r * rng.uniform(0.8, 1.2),
            ];
            tumours.push(Blob::new(&mut rng, c, radii, 0.08));
            let contrast = match spec.anatomy {
                Anatomy::Basic => rng.uniform(22.0, 35.0),
                Anatomy::Full => rng.uniform(20.0, 55.0),
            };
            hu_tumour.push(hu_liver - contrast as f32);
        }
        // spine (posterior = +y) and a few ribs just inside the body outline
        let mut bones = vec![(
            centre[0],
            centre[1] + 0.62 * ry,
            0.11 * ry.min(rx),
            rng.uniform(500.0, 800.0) as f32,
        )];
        let n_ribs = 4 + (rng.next() % 3) as usize;
        for i in 0..n_ribs {
            let side = if i % 2 == 0 { -1.0 } else { 1.0 };
            let t = rng.uniform(0.15, 0.45) * std::f64::consts::PI;
            let (bx, by) = (
                side * rx * 0.86 * t.cos(),
                ry * 0.86 * t.sin() * if i % 4 < 2 { 1.0 } else { -0.6 },
            );
            bones.push((
                centre[0] + bx,
                centre[1] + by,
                0.035 * rx,
                rng.uniform(400.0, 900.0) as f32,
            ));
        }
        let mut scene = Scene {
            centre,
            body,
            fat,
            liver,
            spleen,
            tumours,
            bones,
            hu_tissue: rng.uniform(35.0, 48.0) as f32,
            hu_fat: rng.uniform(-110.0, -90.0) as f32,
            hu_liver,
            hu_spleen: rng.uniform(45.0, 55.0) as f32,
            hu_tumour,
            z_grad: rng.uniform(-3.0, 3.0) as f32,
            extra: None,
        };
        if spec.anatomy == Anatomy::Full {
            scene.extra = Some(scene.extra_structures(spec.seed, liver_c, liver_r, ez, max_sp));
        }
        scene
    }

    /// The structures of [`Anatomy::Full`], drawn from their own generator so that the basic draws
    /// above are the same at both levels.
    fn extra_structures(
        &self,
        seed: u64,
        liver_c: [f64; 3],
        liver_r: [f64; 3],
        ez: f64,
        max_sp: f64,
    ) -> Extra {
        let mut rng = SplitMix(seed ^ 0x0A7A_70A1_5EED_F011);
        let [rx, ry] = self.body;
        let c = self.centre;
        let muscle = rng.uniform(0.07, 0.1) * rx.min(ry);
        // kidneys: behind the liver's lower half, either side of the spine (right one slightly lower)
        let kz = liver_c[2] - rng.uniform(0.2, 0.28) * ez;
        let kidneys = [-1.0, 1.0]
            .iter()
            .map(|&side| {
                let kc = [
                    c[0] + side * rx * rng.uniform(0.36, 0.42),
                    c[1] + ry * rng.uniform(0.4, 0.48),
                    kz + if side < 0.0 { -0.03 * ez } else { 0.0 },
                ];
                let kr = [
                    0.17 * rx * rng.uniform(0.9, 1.1),
                    0.19 * ry * rng.uniform(0.9, 1.1),
                    (0.22 * ez).min(0.35 * rx) * rng.uniform(0.9, 1.1),
                ];
                Blob::new(&mut rng, kc, kr, 0.08)
            })
            .collect();
        // aorta: in front of the spine, slightly to the patient's left
        let (_, spine_y, spine_r, _) = self.bones[0];
        let ar = 0.075 * rx.min(ry);
        let aorta = (c[0] + 0.06 * rx, spine_y - spine_r - ar - 0.02 * ry, ar);
        // hepatic vessels: 3 to 5 trunks from a hilum (medial, posterior, below the liver's centre) to
        // points deep in the liver, each with two side branches
        let hilum = [
            liver_c[0] + 0.3 * liver_r[0],
            liver_c[1] + 0.2 * liver_r[1],
            liver_c[2] - 0.15 * liver_r[2],
        ];
        let small = liver_r.iter().cloned().fold(f64::INFINITY, f64::min);
        let inside = |rng: &mut SplitMix| {
            let mut q = liver_c;
            for _ in 0..64 {
                let cand = [0, 1, 2].map(|i| liver_c[i] + liver_r[i] * rng.uniform(-0.85, 0.85));
                if self.liver.level(cand) < 0.6 {
                    q = cand;
                    break;
                }
            }
            q
        };
        let mut vessels = Vec::new();
        let trunks = 3 + (rng.next() % 3) as usize;
        for _ in 0..trunks {
            let end = inside(&mut rng);
            let r = (small * rng.uniform(0.09, 0.13)).max(max_sp);
            for _ in 0..2 {
                let t = rng.uniform(0.35, 0.8);
                let from = [0, 1, 2].map(|i| hilum[i] + t * (end[i] - hilum[i]));
                let to = inside(&mut rng);
                let to = [0, 1, 2].map(|i| from[i] + 0.6 * (to[i] - from[i]));
                vessels.push(Tube {
                    a: from,
                    b: to,
                    r: (0.65 * r).max(0.8 * max_sp),
                });
            }
            vessels.push(Tube {
                a: hilum,
                b: end,
                r,
            });
        }
        let cores = self
            .tumours
            .iter()
            .zip(&self.hu_tumour)
            .map(|(t, &hu)| {
                let big = t.inv_radii.iter().all(|&ir| 1.0 / ir > 0.22 * small);
                let necrotic = rng.uniform(0.0, 1.0) < 0.5;
                let darker = rng.uniform(12.0, 25.0) as f32;
                (big && necrotic).then_some(hu - darker)
            })
            .collect();
        Extra {
            muscle,
            hu_muscle: rng.uniform(48.0, 60.0) as f32,
            hu_gut: self.hu_tissue - rng.uniform(12.0, 20.0) as f32,
            kidneys,
            hu_cortex: rng.uniform(140.0, 190.0) as f32,
            hu_medulla: rng.uniform(80.0, 110.0) as f32,
            aorta,
            hu_aorta: rng.uniform(150.0, 200.0) as f32,
            vessels,
            hu_vessel: self.hu_liver + rng.uniform(45.0, 80.0) as f32,
            cores,
        }
    }

    /// HU (before noise) and label at world point `p`.
    #[inline]
    fn sample(&self, p: [f64; 3]) -> (f32, u8) {
        let (dx, dy) = (
            (p[0] - self.centre[0]) / self.body[0],
            (p[1] - self.centre[1]) / self.body[1],
        );
        let r2 = dx * dx + dy * dy;
        if r2 >= 1.0 {
            return (-1024.0, 0);
        }
        for &(bx, by, br, hu) in &self.bones {
            let (u, v) = (p[0] - bx, p[1] - by);
            if u * u + v * v < br * br {
                return (hu, 0);
            }
        }
        // distance to the outline, approximately, in mm
        let depth = (1.0 - r2.sqrt()) * self.body[0].min(self.body[1]);
        if depth < self.fat {
            return (self.hu_fat, 0);
        }
        let zt = ((p[2] - self.centre[2]) / 100.0) as f32 * self.z_grad;
        if let Some(e) = &self.extra {
            // the muscle wall is thickest at the back (paraspinal muscles)
            if depth < self.fat + e.muscle * (1.0 + 1.5 * dy.max(0.0)) {
                return (e.hu_muscle + zt, 0);
            }
            let (ax, ay, ar) = e.aorta;
            let (u, v) = (p[0] - ax, p[1] - ay);
            if u * u + v * v < ar * ar {
                return (e.hu_aorta, 0);
            }
            for k in &e.kidneys {
                // the kidney in its perirenal fat
                let l = k.level(p);
                if l < 1.0 {
                    let hu = if l < 0.4 { e.hu_medulla } else { e.hu_cortex };
                    return (hu + zt, 0);
                }
                if l < 1.6 && !self.liver.contains(p) {
                    return (self.hu_fat, 0);
                }
            }
        }
        if self.liver.contains(p) {
            for (i, (t, hu)) in self.tumours.iter().zip(&self.hu_tumour).enumerate() {
                if t.in_box(p) {
                    let l = t.level(p);
                    if l < 1.0 {
                        let core = self.extra.as_ref().and_then(|e| e.cores[i]);
                        return match core {
                            Some(c) if l < 0.3 => (c + zt, 2),
                            _ => (*hu + zt, 2),
                        };
                    }
                }
            }
            if let Some(e) = &self.extra {
                if e.vessels.iter().any(|v| v.contains(p)) {
                    return (e.hu_vessel + zt, 1);
                }
            }
            return (self.hu_liver + zt, 1);
        }
        if self.spleen.contains(p) {
            return (self.hu_spleen + zt, 0);
        }
        match &self.extra {
            Some(e) => (e.hu_gut + zt, 0),
            None => (self.hu_tissue + zt, 0),
        }
    }
}

/// Generates one phantom. Work is spread over the current rayon pool, one z slice per task.
pub fn generate(spec: &PhantomSpec) -> Result<Phantom, SynthError> {
    spec.validate()?;
    let [nz, ny, nx] = spec.shape_zyx;
    let spacing = [
        spec.spacing_zyx[2],
        spec.spacing_zyx[1],
        spec.spacing_zyx[0],
    ];
    // Index (i - centre) times spacing is exact for half-integers, so a flipped axis mirrors the
    // anatomy bit for bit; the origin is the world position of voxel 0 under the same convention.
    let half = [
        (nx as f64 - 1.0) / 2.0,
        (ny as f64 - 1.0) / 2.0,
        (nz as f64 - 1.0) / 2.0,
    ];
    let d = spec.direction;
    let origin = spec.origin.unwrap_or_else(|| {
        let mut o = [0.0; 3];
        for (k, ok) in o.iter_mut().enumerate() {
            for c in 0..3 {
                *ok -= d[3 * k + c] * spacing[c] * half[c];
            }
        }
        o
    });
    let geometry = Geometry {
        spacing,
        origin,
        direction: d,
    };
    let anatomy = Scene::new(spec, &geometry);
    // world centre of the grid: origin + D S half
    let mut centre = origin;
    for (k, ck) in centre.iter_mut().enumerate() {
        for c in 0..3 {
            *ck += d[3 * k + c] * spacing[c] * half[c];
        }
    }
    let mut image = Array3::<i16>::zeros((nz, ny, nx));
    let mut labels = Array3::<u8>::zeros((nz, ny, nx));
    let noise_seed = mix(spec.seed ^ 0x0123_4567_89AB_CDEF);
    let sd = spec.noise_sd;
    image
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(labels.axis_iter_mut(Axis(0)).into_par_iter())
        .enumerate()
        .for_each(|(z, (mut img, mut lab))| {
            let fz = (z as f64 - half[2]) * spacing[2];
            for y in 0..ny {
                let fy = (y as f64 - half[1]) * spacing[1];
                let row_base = [
                    centre[0] + d[1] * fy + d[2] * fz,
                    centre[1] + d[4] * fy + d[5] * fz,
                    centre[2] + d[7] * fy + d[8] * fz,
                ];
                for x in 0..nx {
                    let fx = (x as f64 - half[0]) * spacing[0];
                    let p = [
                        row_base[0] + d[0] * fx,
                        row_base[1] + d[3] * fx,
                        row_base[2] + d[6] * fx,
                    ];
                    let (hu, l) = anatomy.sample(p);
                    let v = if hu <= -1024.0 {
                        -1024.0
                    } else {
                        let idx = ((z * ny + y) * nx + x) as u64;
                        hu + sd * noise(noise_seed, idx)
                    };
                    img[[y, x]] = v.round().clamp(-1024.0, 3071.0) as i16;
                    lab[[y, x]] = l;
                }
            }
        });
    Ok(Phantom {
        image: Volume {
            data: image,
            geometry,
        },
        labels: Volume {
            data: labels,
            geometry,
        },
        tumours: anatomy.tumours.len(),
    })
}

/// Case name of the `i`-th phantom of a dataset: `phantom_000`, `phantom_001`, ...
pub fn case_name(i: usize) -> String {
    format!("phantom_{i:03}")
}

/// The spec of case `i` of a dataset: `base` with the seed `base.seed + i`.
pub fn case_spec(base: &PhantomSpec, i: usize) -> PhantomSpec {
    PhantomSpec {
        seed: base.seed.wrapping_add(i as u64),
        ..base.clone()
    }
}

/// What [`write_dataset`] wrote.
#[derive(Clone, Debug)]
pub struct DatasetCase {
    /// Case name (`phantom_000`).
    pub name: String,
    /// `imagesTr/NAME_0000.nii.gz`.
    pub image: PathBuf,
    /// `labelsTr/NAME.nii.gz`.
    pub label: PathBuf,
    /// Number of tumours.
    pub tumours: usize,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `cases` phantoms in nnU-Net's raw layout under `out_dir`: `imagesTr/phantom_XXX_0000.nii.gz`
/// (int16 CT), `labelsTr/phantom_XXX.nii.gz` (uint8 labels) and a `dataset.json` as nnU-Net v1 expects
/// (modality CT; labels background, liver, tumor). Case `i` uses [`case_spec`]`(base, i)`.
/// `on_case` is called after each case is written (for progress bars).
pub fn write_dataset(
    out_dir: &Path,
    base: &PhantomSpec,
    cases: usize,
    opts: &WriteOptions,
    mut on_case: impl FnMut(&DatasetCase),
) -> Result<Vec<DatasetCase>, SynthError> {
    base.validate()?;
    let images = out_dir.join("imagesTr");
    let labels = out_dir.join("labelsTr");
    for dir in [&images, &labels] {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let mut written = Vec::with_capacity(cases);
    for i in 0..cases {
        let name = case_name(i);
        let p = generate(&case_spec(base, i))?;
        let case = DatasetCase {
            image: images.join(format!("{name}_0000.nii.gz")),
            label: labels.join(format!("{name}.nii.gz")),
            name,
            tumours: p.tumours,
        };
        p.image.write(&case.image, opts)?;
        p.labels.write(&case.label, opts)?;
        on_case(&case);
        written.push(case);
    }
    write_dataset_json(out_dir, &written)?;
    Ok(written)
}

/// `dataset.json` in the Medical Segmentation Decathlon / nnU-Net v1 format. Training entries name the
/// image without the `_0000` modality suffix, as nnU-Net v1 expects.
fn write_dataset_json(out_dir: &Path, cases: &[DatasetCase]) -> Result<(), SynthError> {
    let training: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            serde_json::json!({
                "image": format!("./imagesTr/{}.nii.gz", c.name),
                "label": format!("./labelsTr/{}.nii.gz", c.name),
            })
        })
        .collect();
    let json = serde_json::json!({
        "name": "Phantom",
        "description": "Synthetic abdominal CT phantoms with liver and tumour labels (nnu-synth)",
        "reference": "nnu-synth",
        "licence": "CC0",
        "release": "1.0",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "liver", "2": "tumor"},
        "numTraining": cases.len(),
        "numTest": 0,
        "training": training,
        "test": [],
    });
    let path = out_dir.join("dataset.json");
    let text = serde_json::to_string_pretty(&json).unwrap_or_default() + "\n";
    nnu_fsio::write_atomic(&path, text.as_bytes()).map_err(|e| {
        let (path, source) = e.into_parts();
        SynthError::Io { path, source }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_has_unit_variance_and_zero_mean() {
        let n = 200_000u64;
        let (mut s, mut s2) = (0.0f64, 0.0f64);
        for i in 0..n {
            let v = f64::from(noise(42, i));
            s += v;
            s2 += v * v;
        }
        let mean = s / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - 1.0).abs() < 0.02, "{var}");
    }

    #[test]
    fn splitmix_reference_values() {
        // First outputs of SplitMix64 seeded with 0 (the published reference sequence).
        let mut r = SplitMix(0);
        assert_eq!(r.next(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next(), 0x6E78_9E6A_A1B9_65F4);
    }
}
