//! The stable-toolchain smoke run of the fuzz targets, included with `#[path]` by
//! `crates/{nnu-volume,nnu-artifacts,nnu-bins}/tests/fuzz_smoke.rs`: replays every regression input of
//! `fuzz/regressions/<target>/` and every seed of `fuzz/seeds.txt` through the target's body, then a fixed
//! number of mutations from a fixed seed (so a failure reproduces). A panicking input is written to
//! `target/fuzz-smoke/<target>-<n>.bin` and named in the failure.

#![allow(dead_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The repository root (three levels above a crate's manifest folder).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files_in(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(suffix))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// The seed files of `target` listed in `fuzz/seeds.txt`.
pub fn seeds(target: &str) -> Vec<PathBuf> {
    let list = std::fs::read_to_string(root().join("fuzz/seeds.txt")).expect("fuzz/seeds.txt");
    let mut out = Vec::new();
    for line in list.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [t, dir, suffix] = f[..] {
            if t == target {
                out.extend(files_in(&root().join(dir), suffix));
            }
        }
    }
    assert!(!out.is_empty(), "no seeds for {target} in fuzz/seeds.txt");
    out
}

/// The regression inputs of `target` (every file of `fuzz/regressions/<target>/` except `*.md`).
pub fn regressions(target: &str) -> Vec<PathBuf> {
    let base = root().join("fuzz/regressions");
    assert!(base.is_dir(), "{} is missing", base.display());
    files_in(&base.join(target), "")
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "md"))
        .collect()
}

/// Runs `body` on `data`; on a panic, saves the input and fails naming it and `what`.
pub fn check(target: &str, what: &str, data: &[u8], body: fn(&[u8])) {
    if catch_unwind(AssertUnwindSafe(|| body(data))).is_err() {
        let dir = root().join("target/fuzz-smoke");
        std::fs::create_dir_all(&dir).ok();
        let n = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        let file = dir.join(format!("{target}-{n}.bin"));
        std::fs::write(&file, data).ok();
        panic!(
            "{target}: {what} panicked; the input is saved as {}",
            file.display()
        );
    }
}

/// xorshift64*: a fixed-seed generator.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that often sit on a boundary, written at random offsets (in both byte orders).
const INTERESTING: [u64; 12] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0x8000,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    u64::MAX,
];

/// One mutated copy of a seed: 1 to 8 edits (byte set, bit flip, insert, delete, boundary value, splice
/// from another seed, truncation), at most `max_len` bytes.
pub fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], max_len: usize) -> Vec<u8> {
    let mut d = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(8) {
        if d.is_empty() {
            d.push(rng.next() as u8);
        }
        let i = rng.below(d.len());
        match rng.below(8) {
            0 => d[i] = rng.next() as u8,
            1 => d[i] ^= 1 << rng.below(8),
            2 => d.insert(i, rng.next() as u8),
            3 => {
                d.remove(i);
            }
            4 | 5 => {
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let w = [1, 2, 4, 8][rng.below(4)];
                let bytes = if rng.below(2) == 0 {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                let src = if rng.below(2) == 0 {
                    &bytes[..w]
                } else {
                    &bytes[8 - w..]
                };
                for (k, b) in src.iter().enumerate() {
                    if let Some(x) = d.get_mut(i + k) {
                        *x = *b;
                    }
                }
            }
            6 => {
                let other = &seeds[rng.below(seeds.len())];
                let a = rng.below(other.len());
                let b = (a + rng.below(64)).min(other.len());
                d.splice(i..i, other[a..b].iter().copied());
            }
            _ => d.truncate(i),
        }
    }
    d.truncate(max_len);
    d
}

/// The whole smoke run of one target: regressions, seeds, then `runs` mutations from `seed`.
pub fn smoke(target: &str, body: fn(&[u8]), runs: usize, seed: u64, max_len: usize) {
    for path in regressions(target) {
        let data = std::fs::read(&path).expect("regression input");
        check(target, &path.display().to_string(), &data, body);
    }
    let seeds: Vec<Vec<u8>> = seeds(target)
        .iter()
        .map(|p| {
            let data = std::fs::read(p).expect("seed");
            check(target, &p.display().to_string(), &data, body);
            data
        })
        .collect();
    let mut rng = Rng(seed);
    for k in 0..runs {
        let data = mutate(&mut rng, &seeds, max_len);
        check(
            target,
            &format!("mutation {k} (seed {seed:#x})"),
            &data,
            body,
        );
    }
}
