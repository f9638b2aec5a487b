//! The browser's processes as the operating system sees them: the tree under
//! the process we spawned, its memory (PSS), and killing it.
//!
//! Linux only: it reads `/proc`. The process we spawn may be a wrapper
//! script (Debian's `/usr/bin/chromium-headless-shell` runs the real binary
//! as its child without `exec`), so everything here works on the whole tree
//! under the spawned pid, never on that pid alone.
//!
//! Deliberately no async: these are short reads of `/proc`, called from
//! `spawn_blocking` or while nothing else waits on them.

use std::collections::HashMap;
use std::fs;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A process id.
pub type ProcessId = u32;

/// What a Chromium process does, from its `--type=` switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessKind {
    /// The browser process itself (no `--type=`).
    Browser,
    /// A renderer: runs one site's pages and their scripts.
    Renderer,
    /// Zygotes, the GPU and utility processes (network, storage, ...).
    Helper,
    /// Not Chromium: the wrapper script that started it.
    Other,
}

/// One process of a browser's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserProcess {
    pub pid: ProcessId,
    pub kind: ProcessKind,
}

/// `root` and every process below it, parents before children. Empty when
/// `root` is gone.
pub fn tree(root: ProcessId) -> Vec<ProcessId> {
    let mut children: HashMap<ProcessId, Vec<ProcessId>> = HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<ProcessId>().ok())
        else {
            continue;
        };
        if let Some(parent) = parent_of(pid) {
            children.entry(parent).or_default().push(pid);
        }
    }
    if !alive(root) {
        return Vec::new();
    }
    let mut found = vec![root];
    let mut next = 0;
    while next < found.len() {
        if let Some(below) = children.get(&found[next]) {
            found.extend(below);
        }
        next += 1;
    }
    found
}

/// The tree under `root` with what each process is.
pub fn classified_tree(root: ProcessId) -> Vec<BrowserProcess> {
    tree(root)
        .into_iter()
        .map(|pid| BrowserProcess {
            pid,
            kind: kind_of(pid),
        })
        .collect()
}

/// Proportional set size of the whole tree under `root`, in bytes: each
/// process's private memory plus its share of what it shares, so summing
/// over the tree counts shared pages once. `None` when nothing could be read.
pub fn pss_bytes(root: ProcessId) -> Option<u64> {
    let mut total = None;
    for pid in tree(root) {
        if let Some(bytes) = process_pss_bytes(pid) {
            *total.get_or_insert(0) += bytes;
        }
    }
    total
}

/// Sends SIGKILL to `root` and everything below it. The tree is listed
/// first: once a parent dies its children are re-parented and could no
/// longer be found.
pub fn kill_tree(root: ProcessId) {
    for pid in tree(root) {
        let Ok(raw) = i32::try_from(pid) else {
            continue;
        };
        // The process may have exited since it was listed: nothing to do.
        let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
    }
}

/// Whether a process with this id exists (and is not a zombie).
pub fn alive(pid: ProcessId) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat_fields(&stat).is_some_and(|fields| fields.first() != Some(&"Z")),
        Err(_) => false,
    }
}

fn parent_of(pid: ProcessId) -> Option<ProcessId> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name: state, ppid, ...
    stat_fields(&stat)?.get(1)?.parse().ok()
}

/// The fields of `/proc/PID/stat` after the command name, which is in
/// parentheses and may itself hold spaces and parentheses.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().collect())
}

fn kind_of(pid: ProcessId) -> ProcessKind {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return ProcessKind::Other;
    };
    classify(&cmdline)
}

/// What a process is, from its command line: NUL-separated, except that
/// Chromium's child processes rewrite theirs as one space-separated string.
fn classify(cmdline: &[u8]) -> ProcessKind {
    let mut args = cmdline
        .split(|&b| b == 0 || b == b' ')
        .filter(|arg| !arg.is_empty())
        .filter_map(|arg| std::str::from_utf8(arg).ok());
    let program = args.next().unwrap_or("");
    let program = program.rsplit('/').next().unwrap_or(program);
    if !program.starts_with("chrom") && !program.starts_with("headless") {
        return ProcessKind::Other;
    }
    match args.find_map(|arg| arg.strip_prefix("--type=")) {
        None => ProcessKind::Browser,
        Some("renderer") => ProcessKind::Renderer,
        Some(_) => ProcessKind::Helper,
    }
}

fn process_pss_bytes(pid: ProcessId) -> Option<u64> {
    let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    parse_pss_kib(&rollup).map(|kib| kib * 1024)
}

/// The `Pss:` line of `smaps_rollup`, in KiB.
fn parse_pss_kib(rollup: &str) -> Option<u64> {
    rollup.lines().find_map(|line| {
        line.strip_prefix("Pss:")?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_are_told_apart_by_their_type_switch() {
        let check = |cmdline: &str, expected: ProcessKind| {
            assert_eq!(
                classify(cmdline.replace(' ', "\0").as_bytes()),
                expected,
                "{cmdline}"
            );
            // As Chromium's children rewrite it: one string.
            assert_eq!(classify(cmdline.as_bytes()), expected, "{cmdline}");
        };
        check(
            "/usr/lib/chromium/chromium-headless-shell --headless --remote-debugging-port=0",
            ProcessKind::Browser,
        );
        check(
            "/usr/lib/chromium/chromium-headless-shell --type=renderer --lang=en-US",
            ProcessKind::Renderer,
        );
        check(
            "/usr/lib/chromium/chromium --type=zygote",
            ProcessKind::Helper,
        );
        check(
            "/usr/lib/chromium/chromium --type=utility --utility-sub-type=network.mojom.NetworkService",
            ProcessKind::Helper,
        );
        check(
            "/bin/sh -e /usr/bin/chromium-headless-shell",
            ProcessKind::Other,
        );
        check("", ProcessKind::Other);
    }

    #[test]
    fn pss_is_read_from_smaps_rollup() {
        let rollup = "55d0c0a00000-7ffd3b5f1000 ---p 00000000 00:00 0 [rollup]\n\
                      Rss:              123456 kB\nPss:               65432 kB\n\
                      Pss_Anon:          40000 kB\n";
        assert_eq!(parse_pss_kib(rollup), Some(65432));
        assert_eq!(parse_pss_kib("Rss: 1 kB\n"), None);
    }

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let stat = "1234 (a) b (c)) S 99 1234 1234 0 -1";
        assert_eq!(stat_fields(stat).unwrap()[..2], ["S", "99"]);
    }

    #[test]
    fn the_tree_of_this_process_starts_with_it() {
        let me = std::process::id();
        let tree = tree(me);
        assert_eq!(tree.first(), Some(&me));
        assert!(alive(me));
        assert!(pss_bytes(me).is_some_and(|bytes| bytes > 0));
    }
}
