//! Thin, checked wrappers over the Linux system calls the kernel-socket backends share.
//!
//! Layer: packet I/O, slow path (set-up) except [`poll_in`] and [`kick`], which the fast path
//! calls at most once per burst. Every `unsafe` block of the socket backends that is not about
//! walking a ring lives here, each with its `SAFETY:` argument. Structures that `libc` does not
//! describe are declared in the backend files with `#[repr(C)]` from the Linux UAPI headers.

use std::ffi::CString;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::time::Duration;

use super::MacAddr;

/// Opens a socket.
pub(crate) fn socket(
    domain: libc::c_int,
    ty: libc::c_int,
    proto: libc::c_int,
) -> io::Result<OwnedFd> {
    // SAFETY: plain system call with integer arguments; no memory is passed.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly created descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(fd, level, name, value)` for a plain-data `value`.
pub(crate) fn setsockopt<T: Copy>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points to `size_of::<T>()` readable bytes for the duration of the call;
    // T is plain data (Copy, repr(C) at the call sites) as the option expects.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `getsockopt(fd, level, name)` into a plain-data `T`. Fields the kernel does not write stay zero.
pub(crate) fn getsockopt<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<T> {
    let mut value = MaybeUninit::<T>::zeroed();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` has room for `len` bytes and outlives the call; `len` is a valid in/out.
    let rc = unsafe { libc::getsockopt(fd, level, name, value.as_mut_ptr().cast(), &mut len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised plain data (all-zero is a valid T at the call sites), possibly
    // partly overwritten by the kernel.
    Ok(unsafe { value.assume_init() })
}

/// Binds a packet socket to `ifindex` for `protocol` (network byte order; 0: transmit only).
pub(crate) fn bind_packet(fd: &OwnedFd, ifindex: u32, protocol_be: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol_be;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is a valid sockaddr_ll and the length passed is its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A shared memory mapping of a socket's ring, unmapped on drop.
pub(crate) struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; moving it to another thread moves
// the only handle to it (the queue that owns it is the only user).
unsafe impl Send for Mmap {}

// SAFETY: the safe API of `Mmap` only hands out the base pointer and the length; every access
// through the pointer is an `unsafe` block in a backend that argues its own exclusivity (ring
// ownership protocol, disjoint UMEM halves).
unsafe impl Sync for Mmap {}

impl Mmap {
    /// Maps `len` bytes of `fd` at `offset` (shared, read-write, populated).
    pub(crate) fn socket_ring(fd: RawFd, len: usize, offset: libc::off_t) -> io::Result<Mmap> {
        // SAFETY: asks the kernel for a fresh mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                offset,
            )
        };
        Self::checked(p, len)
    }

    /// Maps `len` bytes of anonymous private memory (AF_XDP UMEM).
    pub(crate) fn anonymous(len: usize) -> io::Result<Mmap> {
        // SAFETY: asks the kernel for a fresh anonymous mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        Self::checked(p, len)
    }

    fn checked(p: *mut libc::c_void, len: usize) -> io::Result<Mmap> {
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        match NonNull::new(p.cast::<u8>()) {
            Some(ptr) => Ok(Mmap { ptr, len }),
            None => Err(io::Error::other("mmap returned null")),
        }
    }

    /// The start of the mapping.
    #[inline]
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The length of the mapping in bytes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping we created and nobody uses after this drop.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// The kernel interface index of `name`, or `None` when there is no such interface.
pub(crate) fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok(req)
}

/// The MAC address and MTU of interface `name` (`SIOCGIFHWADDR`, `SIOCGIFMTU`).
pub(crate) fn mac_and_mtu(name: &str) -> io::Result<(MacAddr, u32)> {
    let sock = socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    let mut req = ifreq_for(name)?;
    // SAFETY: `req` is a valid ifreq with the name set; SIOCGIFHWADDR writes ifru_hwaddr.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after SIOCGIFHWADDR succeeded the union holds ifru_hwaddr.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(hw.sa_data.iter()) {
        *dst = *src as u8;
    }
    let mut req = ifreq_for(name)?;
    // SAFETY: `req` is a valid ifreq with the name set; SIOCGIFMTU writes ifru_mtu.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after SIOCGIFMTU succeeded the union holds ifru_mtu.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok((MacAddr(mac), u32::try_from(mtu).unwrap_or(0)))
}

/// Waits up to `timeout` for `fd` to become readable. `Ok(true)`: readable.
pub(crate) fn poll_in(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pfd` is one valid pollfd for the duration of the call.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(rc > 0 && pfd.revents & libc::POLLIN != 0)
}

/// Tells the kernel to process a socket's TX ring: `send(fd, NULL, 0, MSG_DONTWAIT)`.
/// Returns the OS error, if any (`EAGAIN`/`ENOBUFS` are normal under load).
#[inline]
pub(crate) fn kick(fd: RawFd) -> io::Result<()> {
    // SAFETY: a zero-length send with a null buffer reads no memory.
    let rc = unsafe { libc::send(fd, std::ptr::null(), 0, libc::MSG_DONTWAIT) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_interface_facts() {
        // `lo` exists in every network namespace.
        let idx = ifindex("lo").expect("lo has an index");
        assert!(idx > 0);
        let (mac, mtu) = mac_and_mtu("lo").expect("lo facts");
        assert_eq!(mac, MacAddr([0; 6]));
        assert!(mtu >= 1500);
        assert!(ifindex("natgw-no-such-if").is_none());
        assert!(mac_and_mtu("a-name-far-too-long-for-ifreq").is_err());
    }

    #[test]
    fn anonymous_map() {
        let m = Mmap::anonymous(1 << 16).expect("mmap");
        assert_eq!(m.len(), 1 << 16);
        // SAFETY: the mapping is 64 KiB of writable memory we own.
        unsafe {
            m.ptr().write(7);
            assert_eq!(m.ptr().read(), 7);
        }
    }
}
