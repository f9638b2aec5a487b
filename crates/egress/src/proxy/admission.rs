//! Who may use a proxy: only the browser it was started for.
//!
//! Each accepted connection comes from a socket on this host; on Linux,
//! `/proc/net/tcp` names the inode of that socket and `/proc/<pid>/fd` names
//! the processes holding it. The proxy admits the connection only if one of
//! them is the browser's process or a descendant of it. This needs nothing
//! from Chromium (no credential it would have to be taught to send) and
//! holds for every kind of request it makes, service workers included.
//!
//! It is not a sandbox: a process that can ptrace the browser can use the
//! proxy through it. It keeps other local processes, and the browsers of
//! other jobs with other allow-lists, off this proxy.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, PoisonError};

use super::sock_diag;

/// Which connections a proxy accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Only sockets held by the process given to
    /// [`ProxyHandle::admit_process_tree`](super::ProxyHandle::admit_process_tree)
    /// or its descendants (Linux only: elsewhere every connection is
    /// refused). Connections that arrive before the process is known wait
    /// for it, up to the header timeout. The default.
    ProcessTree,
    /// Any local process. Only where nothing else can reach the proxy, e.g.
    /// the proxy and the browser share a network namespace of their own.
    AnyLocalProcess,
}

/// The browser's processes as last listed. Listing every process costs a
/// read of each `/proc/<pid>/stat`, so the list is kept and listed again
/// only when a socket is not found among the processes it names (the
/// browser started another one since). A plain cache: any value is safe.
#[derive(Debug, Default)]
pub(crate) struct TreeCache(Mutex<Option<(u32, Vec<u32>)>>);

impl TreeCache {
    fn get(&self, root: u32) -> Option<Vec<u32>> {
        let cached = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        cached
            .as_ref()
            .filter(|(cached_root, _)| *cached_root == root)
            .map(|(_, pids)| pids.clone())
    }

    fn set(&self, root: u32, pids: Vec<u32>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((root, pids));
    }
}

/// Whether the socket connected from `peer` to `local` is held by `root` or
/// one of its descendants. Blocking: reads `/proc`.
pub(crate) fn held_by_process_tree(
    peer: SocketAddr,
    local: SocketAddr,
    root: u32,
    cache: &TreeCache,
) -> io::Result<bool> {
    // Netlink answers in microseconds; /proc/net/tcp is the fallback where
    // netlink is not allowed.
    let inode = match sock_diag::tcp_socket_inode(peer, local) {
        Ok(inode) => inode,
        Err(_) => socket_inode(peer, local)?,
    };
    let Some(inode) = inode else {
        return Ok(false);
    };
    let wanted = format!("socket:[{inode}]");
    if let Some(known) = cache.get(root) {
        if any_holds(&known, &wanted) {
            return Ok(true);
        }
    }
    let tree = process_tree(root)?;
    let held = any_holds(&tree, &wanted);
    cache.set(root, tree);
    Ok(held)
}

/// Whether one of `pids` has a file descriptor on `wanted` (`socket:[N]`).
fn any_holds(pids: &[u32], wanted: &str) -> bool {
    pids.iter().any(|pid| {
        // A process that ended meanwhile holds nothing.
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            return false;
        };
        fds.flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == wanted))
    })
}

/// The inode of the socket whose local end is `peer` and remote end is
/// `local` (the connecting side of the connection the proxy accepted).
fn socket_inode(peer: SocketAddr, local: SocketAddr) -> io::Result<Option<u64>> {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = match fs::read_to_string(table) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(from), Some(to), Some(inode)) = (fields.get(1), fields.get(2), fields.get(9))
            else {
                continue;
            };
            if parse_proc_addr(from) == Some(peer) && parse_proc_addr(to) == Some(local) {
                return Ok(inode.parse().ok());
            }
        }
    }
    Ok(None)
}

/// Parses `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6): the
/// kernel prints each 32-bit word of the address in host byte order.
fn parse_proc_addr(field: &str) -> Option<SocketAddr> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(addr)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&word(addr.get(i * 8..i * 8 + 8)?)?);
            }
            let v6 = Ipv6Addr::from(bytes);
            // A v4 client of a dual-stack listener shows up mapped.
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// `root` and every live descendant of it.
fn process_tree(root: u32) -> io::Result<Vec<u32>> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(ppid) = parent_of(&stat) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut tree = vec![root];
    let mut seen: HashSet<u32> = HashSet::from([root]);
    let mut next = 0;
    while let Some(&pid) = tree.get(next) {
        next += 1;
        for &child in children.get(&pid).into_iter().flatten() {
            if seen.insert(child) {
                tree.push(child);
            }
        }
    }
    Ok(tree)
}

/// The parent pid from a `/proc/<pid>/stat` line. The command name is in
/// parentheses and may hold spaces and parentheses itself, so the fields
/// are counted from the last `)`.
fn parent_of(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_parse() {
        let check = |field: &str, expected: Option<&str>| {
            let expected = expected.map(|addr| addr.parse::<SocketAddr>().unwrap());
            assert_eq!(parse_proc_addr(field), expected, "{field}");
        };
        if cfg!(target_endian = "little") {
            check("0100007F:1F90", Some("127.0.0.1:8080"));
            check("0A00007F:0050", Some("127.0.0.10:80"));
            check("00000000000000000000000001000000:01BB", Some("[::1]:443"));
            check(
                "0000000000000000FFFF00000100007F:0016",
                Some("127.0.0.1:22"),
            );
        }
        check("0100007F", None);
        check("zz00007F:0050", None);
        check("0100007F:zz", None);
        assert_eq!(parent_of("12 (chrome) S 7 12 12 0"), Some(7));
        assert_eq!(parent_of("13 (a b) (c)) R 1 13 13"), Some(1));
        assert_eq!(parent_of("garbage"), None);
    }

    #[tokio::test]
    async fn this_process_holds_its_own_sockets_and_not_others() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(local).await.unwrap();
        let (_accepted, peer) = listener.accept().await.unwrap();
        let me = std::process::id();
        let cache = std::sync::Arc::new(TreeCache::default());
        let check = move |root: u32| {
            let cache = cache.clone();
            tokio::task::spawn_blocking(move || {
                held_by_process_tree(peer, local, root, &cache).unwrap()
            })
        };
        assert!(check(me).await.unwrap());
        // Again, from the cached list of processes.
        assert!(check(me).await.unwrap());
        // No such process (pids stop far below this): it holds nothing.
        assert!(!check(1_000_000_000).await.unwrap());
    }
}
