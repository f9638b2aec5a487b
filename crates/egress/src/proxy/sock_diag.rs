//! The inode of a local TCP socket, found by its two addresses through
//! netlink's `sock_diag` (the interface `ss` uses): one request, one
//! answer, however many sockets the host has. Reading `/proc/net/tcp`
//! instead costs milliseconds on a host with thousands of sockets, for
//! every connection the proxy admits.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IPPROTO_TCP: u8 = 6;
const HEADER: usize = 16;
/// `inet_diag_msg`: family, state, timer, retrans, the 48-byte socket id,
/// expires, rqueue, wqueue, uid, then the inode.
const INODE_OFFSET: usize = HEADER + 4 + 48 + 16;

/// The inode of the TCP socket whose own address is `local` and whose peer
/// is `remote`; `None` when there is no such socket.
pub(crate) fn tcp_socket_inode(local: SocketAddr, remote: SocketAddr) -> io::Result<Option<u64>> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
    let request = request(local, remote)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "mixed address families"))?;
    send(fd.as_raw_fd(), &request, MsgFlags::empty())?;
    let mut answer = [0u8; 4096];
    let len = recv(fd.as_raw_fd(), &mut answer, MsgFlags::empty())?;
    parse(&answer[..len])
}

fn request(local: SocketAddr, remote: SocketAddr) -> Option<Vec<u8>> {
    let family = match (local.ip(), remote.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => AF_INET,
        (IpAddr::V6(_), IpAddr::V6(_)) => AF_INET6,
        _ => return None,
    };
    let address = |addr: SocketAddr| -> [u8; 16] {
        let mut bytes = [0u8; 16];
        match addr.ip() {
            IpAddr::V4(ip) => bytes[..4].copy_from_slice(&ip.octets()),
            IpAddr::V6(ip) => bytes.copy_from_slice(&ip.octets()),
        }
        bytes
    };
    let mut message = Vec::with_capacity(72);
    message.extend_from_slice(&72u32.to_ne_bytes());
    message.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    message.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    message.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    message.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    message.extend_from_slice(&[family, IPPROTO_TCP, 0, 0]);
    message.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    message.extend_from_slice(&local.port().to_be_bytes());
    message.extend_from_slice(&remote.port().to_be_bytes());
    message.extend_from_slice(&address(local));
    message.extend_from_slice(&address(remote));
    message.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    message.extend_from_slice(&[0xff; 8]); // no cookie
    Some(message)
}

fn parse(answer: &[u8]) -> io::Result<Option<u64>> {
    let truncated = || io::Error::new(io::ErrorKind::InvalidData, "short sock_diag answer");
    let read_u32 = |at: usize| -> io::Result<u32> {
        let bytes = answer.get(at..at + 4).ok_or_else(truncated)?;
        Ok(u32::from_ne_bytes(
            bytes.try_into().map_err(|_| truncated())?,
        ))
    };
    let kind = u16::from_ne_bytes(
        answer
            .get(4..6)
            .ok_or_else(truncated)?
            .try_into()
            .map_err(|_| truncated())?,
    );
    match kind {
        SOCK_DIAG_BY_FAMILY => Ok(Some(u64::from(read_u32(INODE_OFFSET)?))),
        NLMSG_ERROR => {
            let errno = -(read_u32(HEADER)? as i32);
            if errno == nix::errno::Errno::ENOENT as i32 {
                Ok(None)
            } else {
                Err(io::Error::from_raw_os_error(errno))
            }
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected netlink message type {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finds_a_connected_socket_and_not_a_missing_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(server).await.unwrap();
        let (_accepted, peer) = listener.accept().await.unwrap();
        let inode = tcp_socket_inode(peer, server).unwrap().unwrap();
        // The same inode the client's file descriptor names.
        let fd = client.as_raw_fd();
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        assert_eq!(link.to_str().unwrap(), format!("socket:[{inode}]"));
        let nobody: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(tcp_socket_inode(nobody, server).unwrap(), None);
    }
}
