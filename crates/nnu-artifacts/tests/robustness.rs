//! Bad input never panics: mutated fixture pickles (random byte flips, truncations, insertions from a fixed
//! seed), recursion bombs, absurd sizes, cycles and unknown opcodes all give errors.

mod common;

use common::fixtures;
use nnu_artifacts::{pickle, Checkpoint, Error};

/// xorshift64*: a fixed-seed generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let mut files = vec![
        fixtures().join("planner/Task501_PhantomCT/nnUNetPlansv2.1_plans_3D.pkl"),
        fixtures().join("planner/Task501_PhantomCT/splits_final.pkl"),
        fixtures().join("zoo/frombuffer_p5.pkl"),
    ];
    files.extend((0..=5).map(|p| fixtures().join(format!("zoo/zoo_p{p}.pkl"))));
    files
        .iter()
        .map(|f| std::fs::read(f).expect("fixture"))
        .collect()
}

#[test]
fn mutated_pickles_never_panic() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut decoded = 0usize;
    let mut rejected = 0usize;
    for seed in seeds() {
        for _ in 0..400 {
            let mut data = seed.clone();
            for _ in 0..1 + rng.below(4) {
                match rng.below(4) {
                    0 => {
                        let i = rng.below(data.len());
                        data[i] = rng.next() as u8;
                    }
                    1 => {
                        let i = rng.below(data.len());
                        data[i] ^= 1 << rng.below(8);
                    }
                    2 => {
                        let i = rng.below(data.len());
                        data.insert(i, rng.next() as u8);
                    }
                    _ => {
                        let n = rng.below(data.len());
                        data.truncate(n);
                    }
                }
                if data.is_empty() {
                    data.push(b'.');
                }
            }
            match pickle::from_slice(&data) {
                Ok(v) => {
                    // Whatever decodes must also render.
                    let _ = v.to_string();
                    decoded += 1;
                }
                Err(e) => {
                    let _ = e.to_string();
                    rejected += 1;
                }
            }
        }
    }
    // The mutations must exercise both outcomes, or the test checks nothing.
    assert!(
        decoded > 0 && rejected > 0,
        "decoded {decoded}, rejected {rejected}"
    );
}

#[test]
fn every_truncation_is_an_error() {
    let data = std::fs::read(fixtures().join("zoo/zoo_p4.pkl")).expect("fixture");
    for n in 0..data.len() {
        let r = pickle::from_slice(&data[..n]);
        assert!(r.is_err(), "prefix of {n} bytes decoded");
    }
    let data = std::fs::read(fixtures().join("zoo/zoo_p2.pkl")).expect("fixture");
    let err = pickle::from_slice(&data[..data.len() / 2]).expect_err("truncated");
    assert!(matches!(err, Error::Truncated { .. }), "{err}");
}

#[test]
fn recursion_bombs_hit_the_depth_limit() {
    // 100 000 nested lists: [[[[...]]]]
    let n = 100_000;
    let mut data = b"\x80\x02".to_vec();
    data.extend(std::iter::repeat_n(b']', n));
    data.extend(std::iter::repeat_n(b'a', n - 1));
    data.push(b'.');
    let err = pickle::from_slice(&data).expect_err("depth");
    assert!(
        matches!(
            err,
            Error::Limit {
                what: "nesting depth",
                ..
            }
        ),
        "{err}"
    );
    // 100 000 nested 1-tuples: (((None,),),)
    let mut data = b"\x80\x02N".to_vec();
    data.extend(std::iter::repeat_n(0x85u8, n));
    data.push(b'.');
    let err = pickle::from_slice(&data).expect_err("depth");
    assert!(matches!(err, Error::Limit { .. }), "{err}");
    // Marks without end.
    let mut data = b"\x80\x02".to_vec();
    data.extend(std::iter::repeat_n(b'(', 1_000_000));
    let err = pickle::from_slice(&data).expect_err("marks");
    assert!(matches!(err, Error::Truncated { .. }), "{err}");
}

#[test]
fn shared_fan_out_is_not_expanded() {
    // l = [l0]; then 20 levels of [l, l] built from the memo: 2^20 paths, 21 objects.
    let mut data = b"\x80\x02]q\x00".to_vec();
    for i in 0..20u8 {
        data.extend([b']', b'(', b'h', i, b'h', i, b'e', b'q', i + 1]);
    }
    data.push(b'.');
    let v = pickle::from_slice(&data).expect("fan-out");
    let mut cur = &v;
    let mut depth = 0;
    while let Some([a, b]) = cur.as_seq() {
        assert!(a.same_object(b));
        cur = a;
        depth += 1;
    }
    assert_eq!(depth, 20);
}

#[test]
fn absurd_sizes_and_bad_opcodes_are_errors() {
    // BINBYTES8 claiming 2^63 bytes.
    let mut data = b"\x80\x04\x8e".to_vec();
    data.extend((1u64 << 63).to_le_bytes());
    assert!(matches!(
        pickle::from_slice(&data),
        Err(Error::Truncated { .. })
    ));
    // LONG4 with a negative length.
    assert!(matches!(
        pickle::from_slice(b"\x80\x02\x8b\xff\xff\xff\xff."),
        Err(Error::Malformed { .. })
    ));
    // An unknown opcode.
    let err = pickle::from_slice(b"\x80\x02\xff.").expect_err("opcode");
    assert!(
        matches!(
            err,
            Error::BadOpcode {
                opcode: 0xff,
                offset: 2
            }
        ),
        "{err}"
    );
    // Protocol 6 does not exist.
    assert!(pickle::from_slice(b"\x80\x06N.").is_err());
    // A memo key that was never stored.
    assert!(matches!(
        pickle::from_slice(b"\x80\x02h\x07."),
        Err(Error::Malformed { .. })
    ));
    // STOP on an empty stack, SETITEM on a list, APPEND on a dict.
    assert!(pickle::from_slice(b".").is_err());
    assert!(pickle::from_slice(b"\x80\x02]K\x01K\x02s.").is_err());
    assert!(pickle::from_slice(b"\x80\x02}K\x01a.").is_err());
    // A list that contains itself.
    let err = pickle::from_slice(b"\x80\x02]q\x00h\x00a.").expect_err("cycle");
    assert!(err.to_string().contains("itself"), "{err}");
    // A numpy array whose shape needs far more data than it has.
    let arr = b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R(K\x01\
                J\x00\x00\x00\x40J\x00\x00\x00\x40\x86cnumpy\ndtype\nX\x02\x00\x00\x00f4\x89\x88\x87R\
                (K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89C\x04\x00\x00\x00\x00tb.";
    let err = pickle::from_slice(arr).expect_err("size");
    assert!(matches!(err, Error::BadObject { .. }), "{err}");
    // Out-of-band buffers are refused.
    assert!(pickle::from_slice(b"\x80\x05\x97.").is_err());
}

#[test]
fn unknown_globals_stay_opaque() {
    // os.system('echo pwned') must not run: it becomes an object naming the global.
    let v = pickle::from_slice(b"cos\nsystem\n(S'echo pwned'\ntR.").expect("decodes");
    match v {
        pickle::Value::Object(o) => {
            assert_eq!(
                o.class.as_ref().map(ToString::to_string).as_deref(),
                Some("os.system")
            );
        }
        other => panic!("expected an opaque object, got {other:?}"),
    }
}

#[test]
fn damaged_checkpoints_are_errors() {
    let data = std::fs::read(fixtures().join("checkpoints/dtypes.model")).expect("fixture");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cut.model");
    let mut rng = Rng(7);
    for k in 0..60 {
        let mut d = data.clone();
        if k % 2 == 0 {
            d.truncate(rng.below(d.len()));
        } else {
            for _ in 0..8 {
                let i = rng.below(d.len());
                d[i] = rng.next() as u8;
            }
        }
        std::fs::write(&path, &d).expect("write");
        if let Err(e) = Checkpoint::load(&path) {
            assert!(e.to_string().contains("cut.model"), "{e}");
        }
    }
}

/// A longer random-mutation run (the same loop as `mutated_pickles_never_panic`), for when cargo-fuzz is not
/// at hand: `NNU_FUZZ_SECS=120 cargo test -p nnu-artifacts --release --test robustness -- --ignored`.
#[test]
#[ignore]
fn long_mutation_run() {
    let secs: u64 = std::env::var("NNU_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let seeds = seeds();
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let (mut runs, mut ok) = (0u64, 0u64);
    while std::time::Instant::now() < deadline {
        for _ in 0..1000 {
            let mut data = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(data.len());
                match rng.below(5) {
                    0 => data[i] = rng.next() as u8,
                    1 => data[i] ^= 1 << rng.below(8),
                    2 => data.insert(i, rng.next() as u8),
                    3 => {
                        // Splice a chunk of another seed in.
                        let other = &seeds[rng.below(seeds.len())];
                        let a = rng.below(other.len());
                        let b = (a + rng.below(64)).min(other.len());
                        data.splice(i..i, other[a..b].iter().copied());
                    }
                    _ => data.truncate(i.max(1)),
                }
            }
            if let Ok(v) = pickle::from_slice(&data) {
                let _ = v.to_string();
                let _ = nnu_artifacts::Plans::from_value(&v);
                let _ = nnu_artifacts::Splits::from_value(&v);
                ok += 1;
            }
            runs += 1;
        }
    }
    eprintln!("{runs} mutated inputs, {ok} decoded, no panic");
}
