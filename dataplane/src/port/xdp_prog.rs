//! Our minimal XDP program: redirect every frame to the AF_XDP socket of its RX queue.
//!
//! Layer: packet I/O set-up (slow path), for [`super::af_xdp`]. Instead of pulling in libbpf /
//! libxdp (which need a C build), we assemble the program by hand (six eBPF instructions) and
//! talk to the kernel with the `bpf(2)` system call directly:
//!
//! ```text
//! r2 = *(u32 *)(r1 + 16)      ; ctx->rx_queue_index
//! r1 = <XSKMAP fd>            ; ld_imm64 with BPF_PSEUDO_MAP_FD (two instruction slots)
//! r3 = XDP_PASS               ; bpf_redirect_map flags: action when no socket is registered
//! call bpf_redirect_map       ; helper 51
//! exit
//! ```
//!
//! The program is attached with `BPF_LINK_CREATE` (kernel ≥ 5.9), so closing the link file
//! descriptor (dropping [`XdpAttachment`]) detaches it: no program is left behind when the
//! appliance exits or crashes, and no bpffs is needed. Values come from `<linux/bpf.h>`,
//! `<linux/if_link.h>`; the `bpf_attr` offsets are checked by a test against the UAPI layout.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use super::XdpMode;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
const XDP_PASS: i32 = 2;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// `union bpf_attr`, as bytes (144 in the UAPI we build against; the kernel accepts a shorter or
/// longer attribute as long as the unknown tail is zero).
#[repr(C, align(8))]
struct BpfAttr([u8; 144]);

impl BpfAttr {
    fn new() -> BpfAttr {
        BpfAttr([0; 144])
    }
    fn u32_at(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64_at(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
}

fn bpf(cmd: libc::c_long, attr: &mut BpfAttr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, fully initialised bpf_attr buffer of the size we pass; pointers
    // stored in it (instructions, license, log, key, value) point to memory that the caller
    // keeps alive for the duration of this call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            std::mem::size_of::<BpfAttr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

fn fd_from(rc: libc::c_long) -> io::Result<OwnedFd> {
    let fd = RawFd::try_from(rc).map_err(|_| io::Error::other("bpf returned a bad fd"))?;
    // SAFETY: the bpf syscall just returned this new descriptor; we are its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Encodes one eBPF instruction.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = (dst & 0x0f) | (src << 4);
    b[2..4].copy_from_slice(&off.to_ne_bytes());
    b[4..8].copy_from_slice(&imm.to_ne_bytes());
    u64::from_ne_bytes(b)
}

/// The six instructions of the redirect program (see the module docs).
fn program(map_fd: RawFd) -> [u64; 6] {
    const LDX_MEM_W: u8 = 0x61;
    const LD_IMM_DW: u8 = 0x18;
    const ALU64_MOV_K: u8 = 0xb7;
    const JMP_CALL: u8 = 0x85;
    const JMP_EXIT: u8 = 0x95;
    const PSEUDO_MAP_FD: u8 = 1;
    [
        insn(LDX_MEM_W, 2, 1, 16, 0),
        insn(LD_IMM_DW, 1, PSEUDO_MAP_FD, 0, map_fd),
        insn(0, 0, 0, 0, 0),
        insn(ALU64_MOV_K, 3, 0, 0, XDP_PASS),
        insn(JMP_CALL, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        insn(JMP_EXIT, 0, 0, 0, 0),
    ]
}

/// An XSKMAP, the redirect program using it, and (once attached) the link to the interface.
/// Dropping it detaches the program and frees the map.
#[derive(Debug)]
pub(crate) struct XdpAttachment {
    map: OwnedFd,
    prog: OwnedFd,
    /// The link to the interface and the mode that attached ("native" or "generic").
    link: OnceLock<(OwnedFd, &'static str)>,
}

impl XdpAttachment {
    /// Creates an XSKMAP with `entries` slots and loads the redirect program.
    pub(crate) fn load(entries: u32) -> io::Result<XdpAttachment> {
        let mut attr = BpfAttr::new();
        attr.u32_at(0, BPF_MAP_TYPE_XSKMAP)
            .u32_at(4, 4)
            .u32_at(8, 4)
            .u32_at(12, entries.max(1));
        let map = fd_from(bpf(BPF_MAP_CREATE, &mut attr)?)?;

        let insns = program(map.as_raw_fd());
        let license = b"GPL\0";
        let mut log = vec![0u8; 4096];
        let load = |with_log: bool, log: &mut [u8]| {
            let mut attr = BpfAttr::new();
            attr.u32_at(0, BPF_PROG_TYPE_XDP)
                .u32_at(4, insns.len() as u32)
                .u64_at(8, insns.as_ptr() as u64)
                .u64_at(16, license.as_ptr() as u64);
            if with_log {
                attr.u32_at(24, 1)
                    .u32_at(28, log.len() as u32)
                    .u64_at(32, log.as_mut_ptr() as u64);
            }
            attr.0[48..48 + 9].copy_from_slice(b"natgw_xsk");
            bpf(BPF_PROG_LOAD, &mut attr)
        };
        let prog = match load(false, &mut log) {
            Ok(fd) => fd_from(fd)?,
            Err(e) => {
                // Load again with the verifier log, to say why.
                let _ = load(true, &mut log);
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let text = String::from_utf8_lossy(&log[..end]);
                return Err(io::Error::new(
                    e.kind(),
                    format!("BPF_PROG_LOAD: {e}; verifier: {}", text.trim()),
                ));
            }
        };
        Ok(XdpAttachment {
            map,
            prog,
            link: OnceLock::new(),
        })
    }

    /// Registers the AF_XDP socket `xsk` for RX queue `queue`.
    pub(crate) fn register(&self, queue: u32, xsk: RawFd) -> io::Result<()> {
        let key = queue;
        let value = xsk as u32;
        let mut attr = BpfAttr::new();
        attr.u32_at(0, self.map.as_raw_fd() as u32)
            .u64_at(8, &key as *const u32 as u64)
            .u64_at(16, &value as *const u32 as u64)
            .u64_at(24, 0);
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(|_| ())
    }

    /// The attach mode: "native", "generic", or "detached" before [`XdpAttachment::attach`].
    pub(crate) fn mode(&self) -> &'static str {
        self.link.get().map_or("detached", |(_, m)| m)
    }

    /// Attaches the program to `ifindex` in `mode` (Auto: native, else generic). Only the first
    /// successful call attaches; later calls fail.
    pub(crate) fn attach(&self, ifindex: u32, mode: XdpMode) -> io::Result<()> {
        let try_mode = |flags: u32| {
            let mut attr = BpfAttr::new();
            attr.u32_at(0, self.prog.as_raw_fd() as u32)
                .u32_at(4, ifindex)
                .u32_at(8, BPF_XDP)
                .u32_at(12, flags);
            bpf(BPF_LINK_CREATE, &mut attr).and_then(fd_from)
        };
        let (link, name) = match mode {
            XdpMode::Native => (try_mode(XDP_FLAGS_DRV_MODE)?, "native"),
            XdpMode::Generic => (try_mode(XDP_FLAGS_SKB_MODE)?, "generic"),
            XdpMode::Auto => match try_mode(XDP_FLAGS_DRV_MODE) {
                Ok(l) => (l, "native"),
                Err(_) => (try_mode(XDP_FLAGS_SKB_MODE)?, "generic"),
            },
        };
        self.link
            .set((link, name))
            .map_err(|_| io::Error::other("XDP program already attached"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_encoding() {
        // r2 = *(u32 *)(r1 + 16): opcode 0x61, dst 2, src 1, off 16.
        let i = insn(0x61, 2, 1, 16, 0).to_ne_bytes();
        assert_eq!(i, [0x61, 0x12, 16, 0, 0, 0, 0, 0]);
        let p = program(7);
        assert_eq!(p.len(), 6);
        let ld = p[1].to_ne_bytes();
        assert_eq!(ld[0], 0x18);
        assert_eq!(ld[1], 0x11, "dst r1, src BPF_PSEUDO_MAP_FD");
        assert_eq!(i32::from_ne_bytes([ld[4], ld[5], ld[6], ld[7]]), 7);
        assert_eq!(p[5].to_ne_bytes()[0], 0x95);
    }

    #[test]
    fn program_passes_the_verifier_when_privileged() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: program_passes_the_verifier_when_privileged: needs root"
            );
            return;
        }
        let a = XdpAttachment::load(2).expect("map + program load");
        assert_eq!(a.mode(), "detached");
    }
}
