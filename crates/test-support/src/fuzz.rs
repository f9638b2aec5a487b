//! A small mutation fuzzer for the test suite: it replays a target's corpus
//! (kept in the repository under `fuzz/corpus/<target>/`), then feeds the
//! target mutations of it for a bounded time.
//!
//! cargo-fuzz needs a nightly toolchain, which this project does not use, so
//! the suite fuzzes with this instead: no coverage guidance, but the same
//! contract. A panic, a target error, or a single input running past its
//! bound fails the test, naming the input (saved under
//! `target/fuzz-failures/<target>/`) and the seed that reproduces the run
//! (`ACCORD_FUZZ_SEED`). `ACCORD_FUZZ_SECONDS` sets how long each target
//! runs (default 5).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How one fuzz target runs.
#[derive(Debug, Clone)]
pub struct FuzzTarget {
    /// Name of the corpus folder, `fuzz/corpus/<name>/`.
    pub name: &'static str,
    /// Tokens worth splicing into inputs (syntax of the format).
    pub dictionary: &'static [&'static str],
    /// Longest input generated, in bytes.
    pub max_len: usize,
    /// Longest time one input may take before it counts as a hang.
    pub per_input: Duration,
}

/// The repository's `fuzz/corpus/<name>/` folder.
pub fn corpus_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(name)
}

/// Replays the corpus, then fuzzes `check` for the configured time.
///
/// `check` returns `Err` for an outcome the target must never produce (a
/// 5xx, an internal error, a result past a bound).
///
/// # Panics
/// On the first failing input, or when the corpus folder is missing or empty.
pub fn fuzz<F>(target: &FuzzTarget, check: F)
where
    F: Fn(&[u8]) -> Result<(), String> + Send + Sync + 'static,
{
    let corpus = load_corpus(target.name);
    let seconds = read_env("ACCORD_FUZZ_SECONDS").unwrap_or(5);
    let seed = read_env("ACCORD_FUZZ_SEED").unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        nanos | 1
    });
    let budget = Duration::from_secs(seconds);
    let (inputs_tx, inputs_rx) = mpsc::sync_channel::<Vec<u8>>(0);
    let (done_tx, done_rx) = mpsc::channel::<Result<(), String>>();
    let runner = std::thread::Builder::new()
        .name(format!("fuzz-{}", target.name))
        .spawn(move || {
            for input in inputs_rx {
                let outcome = catch_unwind(AssertUnwindSafe(|| check(&input)))
                    .unwrap_or_else(|panic| Err(format!("panicked: {}", panic_text(&panic))));
                if done_tx.send(outcome).is_err() {
                    break;
                }
            }
        })
        .expect("start the fuzz runner");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut runs = 0u64;
    let mut next = corpus.iter().cloned();
    loop {
        let input = match next.next() {
            Some(seed_input) => seed_input,
            None if started.elapsed() < budget => mutate(&mut rng, &corpus, target),
            None => break,
        };
        inputs_tx
            .send(input.clone())
            .expect("the fuzz runner takes inputs");
        let verdict = match done_rx.recv_timeout(target.per_input) {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("ran longer than {:?}", target.per_input)),
        };
        runs += 1;
        if let Err(why) = verdict {
            let saved = save_failure(target.name, &input);
            panic!(
                "fuzz target {} failed after {runs} inputs (ACCORD_FUZZ_SEED={seed}): {why}\n\
                 input saved to {}; as text: {:?}",
                target.name,
                saved.display(),
                String::from_utf8_lossy(&input[..input.len().min(2_000)])
            );
        }
    }
    drop(inputs_tx);
    runner.join().expect("the fuzz runner ends");
    report(target.name, runs, started.elapsed(), seed);
}

/// The test's own report line: how much fuzzing it did, and how to repeat it.
#[expect(
    clippy::print_stderr,
    reason = "a test's report, shown by the test runner"
)]
fn report(name: &str, runs: u64, took: Duration, seed: u64) {
    eprintln!("fuzz target {name}: {runs} inputs in {took:?} (seed {seed})");
}

fn load_corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(name);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("fuzz corpus {}: {err}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "fuzz corpus {} is empty", dir.display());
    paths
        .iter()
        .map(|path| std::fs::read(path).expect("read a corpus file"))
        .collect()
}

fn save_failure(name: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/fuzz-failures")
        .join(name);
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("failure-{}", std::process::id()));
    let _ = std::fs::write(&path, input);
    path
}

fn read_env(name: &str) -> Option<u64> {
    #[expect(
        clippy::disallowed_methods,
        reason = "test support: the fuzz budget and seed come from the test's environment"
    )]
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}")),
    )
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic".to_owned())
}

/// xorshift64*: small, fast and reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to eight mutations of a corpus entry.
fn mutate(rng: &mut Rng, corpus: &[Vec<u8>], target: &FuzzTarget) -> Vec<u8> {
    let mut input = corpus[rng.below(corpus.len())].clone();
    for _ in 0..=rng.below(8) {
        let at = rng.below(input.len() + 1);
        match rng.below(8) {
            // Flip, set or drop bytes.
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = [0, b'"', b'\\', b'{', b'[', b'<', 0xff, b'('][rng.below(8)];
            }
            2 if !input.is_empty() => {
                let end = (at + rng.below(16)).min(input.len());
                input.drain(at.min(end)..end);
            }
            // Splice in a token, or a token repeated: the deep-nesting case.
            3 | 4 if !target.dictionary.is_empty() => {
                let token = target.dictionary[rng.below(target.dictionary.len())].as_bytes();
                let times = if rng.below(4) == 0 {
                    1 + rng.below(2_000)
                } else {
                    1
                };
                let splice: Vec<u8> = token
                    .iter()
                    .copied()
                    .cycle()
                    .take(token.len() * times)
                    .collect();
                input.splice(at..at, splice);
            }
            // Copy a slice of this or another entry here.
            5 => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let to = (from + rng.below(64)).min(other.len());
                    input.splice(at..at, other[from..to].iter().copied());
                }
            }
            // A long run of one byte.
            6 => {
                const BYTES: &[u8] = b"a \"<>{}[]\\x0";
                let byte = BYTES[rng.below(BYTES.len())];
                input.splice(at..at, std::iter::repeat_n(byte, 1 + rng.below(5_000)));
            }
            _ => {
                let end = (at + rng.below(32)).min(input.len());
                let copy = input[at.min(end)..end].to_vec();
                input.splice(at..at, copy);
            }
        }
    }
    input.truncate(target.max_len);
    input
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_reproducible_and_bounded() {
        let target = FuzzTarget {
            name: "unit",
            dictionary: &["(", "<div>"],
            max_len: 100,
            per_input: Duration::from_secs(1),
        };
        let corpus = vec![b"hello world".to_vec(), b"{}".to_vec()];
        let run = |seed| {
            let mut rng = Rng(seed);
            (0..200)
                .map(|_| mutate(&mut rng, &corpus, &target))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        assert!(run(9).iter().all(|input| input.len() <= 100));
    }
}
