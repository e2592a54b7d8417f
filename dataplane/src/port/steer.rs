//! Classic-BPF steering programs for AF_PACKET fanout (`PACKET_FANOUT_CBPF`).
//!
//! The kernel runs the program on every received frame and delivers the frame to fanout member
//! `return value % members`; members are the port's RX queues in queue order, so the program decides which
//! worker gets the frame. Two programs make the NIC-less steering of DESIGN §3 happen in the kernel:
//! - [`SteerRule::Flow`] (inside): the NAT core's in2out owner, [`crate::nat::flow::flow_shard`] computed
//!   over source, destination, the ports word and the protocol (ports read as 0 for ICMP and later
//!   fragments, as the core does for echo);
//! - [`SteerRule::DstPortBlock`] (outside): the port block of the destination port (the ICMP echo
//!   identifier for ICMP), `(port - range_start) / block`, which is the allocator's initial owner of that
//!   block with [`natgw_allocator::Ownership::Blocks`].
//!
//! A frame the program mis-steers (a moved block, an ICMP error, a reserved range shifting the blocks) still
//! reaches its owner through the core's software handoff, which is counted.

use crate::nat::flow::{FLOW_K1, FLOW_K2, FLOW_K3};

/// One classic BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockFilter {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Generic field.
    pub k: u32,
}

/// Which steering program to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SteerRule {
    /// Inside: by the in2out flow owner.
    Flow,
    /// Outside: by the destination port's block.
    DstPortBlock {
        /// First port of the SNAT range.
        range_start: u16,
        /// Ports per block.
        block: u16,
    },
}

// Opcodes (linux/filter.h).
const LD_W_ABS: u16 = 0x20;
const LD_H_ABS: u16 = 0x28;
const LD_B_ABS: u16 = 0x30;
const LD_W_IND: u16 = 0x40;
const LD_H_IND: u16 = 0x48;
const LDX_B_MSH: u16 = 0xb1;
const LD_IMM: u16 = 0x00;
const LD_MEM: u16 = 0x60;
const ST: u16 = 0x02;
const TAX: u16 = 0x07;
const ALU_ADD_X: u16 = 0x0c;
const ALU_MUL_K: u16 = 0x24;
const ALU_SUB_K: u16 = 0x14;
const ALU_DIV_K: u16 = 0x34;
const ALU_RSH_K: u16 = 0x74;
const ALU_XOR_X: u16 = 0xac;
const JEQ_K: u16 = 0x15;
const JSET_K: u16 = 0x45;
const RET_A: u16 = 0x16;
const RET_K: u16 = 0x06;
const JA: u16 = 0x05;
/// Ancillary load of the frame's protocol (ethertype): `SKF_AD_OFF + SKF_AD_PROTOCOL`.
const SKF_AD_PROTOCOL: u32 = 0xffff_f000;

const fn op(code: u16, k: u32) -> SockFilter {
    SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// The program for a rule. The kernel runs fanout programs before it pushes the link-layer header back
/// (`packet_rcv_fanout`), so offsets are from the IPv4 header and the ethertype comes from the
/// `SKF_AD_PROTOCOL` ancillary load.
pub fn program(rule: SteerRule) -> Vec<SockFilter> {
    let mut p = vec![
        op(LD_H_ABS, SKF_AD_PROTOCOL),
        jump(JEQ_K, 0x0800, 1, 0),
        op(RET_K, 0),
    ];
    match rule {
        SteerRule::Flow => {
            p.extend([
                op(LD_W_ABS, 12), // src
                op(ALU_MUL_K, FLOW_K1),
                op(TAX, 0),
                op(LD_W_ABS, 16), // dst
                op(ALU_ADD_X, 0),
                op(ALU_MUL_K, FLOW_K2),
                op(ST, 0), // M[0] = (src*K1 + dst)*K2
                op(LD_IMM, 0),
                op(ST, 1),       // M[1] = ports word, 0 unless read below
                op(LD_B_ABS, 9), // protocol
                op(ST, 2),
                jump(JEQ_K, 1, 5, 0), // ICMP: ports 0
                op(LD_H_ABS, 6),
                jump(JSET_K, 0x1fff, 3, 0), // later fragment: ports 0
                op(LDX_B_MSH, 0),
                op(LD_W_IND, 0), // sport << 16 | dport
                op(ST, 1),
                // h = (M[0] + M[1]) * K3 + proto
                op(LD_MEM, 1),
                op(TAX, 0),
                op(LD_MEM, 0),
                op(ALU_ADD_X, 0),
                op(ALU_MUL_K, FLOW_K3),
                op(ST, 0),
                op(LD_MEM, 2),
                op(TAX, 0),
                op(LD_MEM, 0),
                op(ALU_ADD_X, 0),
                // h ^= h >> 16
                op(ST, 0),
                op(ALU_RSH_K, 16),
                op(TAX, 0),
                op(LD_MEM, 0),
                op(ALU_XOR_X, 0),
                op(RET_A, 0),
            ]);
        }
        SteerRule::DstPortBlock { range_start, block } => {
            p.extend([
                op(LDX_B_MSH, 0),
                op(LD_B_ABS, 9),
                jump(JEQ_K, 1, 2, 0),
                op(LD_H_IND, 2), // TCP/UDP destination port
                op(JA, 1),
                op(LD_H_IND, 4), // ICMP echo identifier
                op(ALU_SUB_K, u32::from(range_start)),
                op(ALU_DIV_K, u32::from(block.max(1))),
                op(RET_A, 0),
            ]);
        }
    }
    p
}

/// Run a program over an Ethernet frame the way the fanout hook would (for tests): loads see the packet
/// from the network header on, the ancillary protocol load sees the ethertype. Returns the program's value,
/// or 0 when a load falls outside the packet.
pub fn interpret(prog: &[SockFilter], frame: &[u8]) -> u32 {
    let Some(ethertype) = frame
        .get(12..14)
        .map(|b| u32::from(u16::from_be_bytes([b[0], b[1]])))
    else {
        return 0;
    };
    let frame = &frame[14..];
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    let load = |at: usize, n: usize| -> Option<u32> {
        let b = frame.get(at..at + n)?;
        Some(b.iter().fold(0u32, |v, &byte| (v << 8) | u32::from(byte)))
    };
    while let Some(ins) = prog.get(pc) {
        pc += 1;
        let k = ins.k;
        match ins.code {
            LD_W_ABS | LD_H_ABS | LD_B_ABS | LD_W_IND | LD_H_IND => {
                let n = match ins.code {
                    LD_W_ABS | LD_W_IND => 4,
                    LD_H_ABS | LD_H_IND => 2,
                    _ => 1,
                };
                let base = if matches!(ins.code, LD_W_IND | LD_H_IND) {
                    x
                } else {
                    0
                };
                if ins.code == LD_H_ABS && k == SKF_AD_PROTOCOL {
                    a = ethertype;
                    continue;
                }
                match load(base.wrapping_add(k) as usize, n) {
                    Some(v) => a = v,
                    None => return 0,
                }
            }
            LDX_B_MSH => match load(k as usize, 1) {
                Some(v) => x = (v & 0xf) * 4,
                None => return 0,
            },
            LD_IMM => a = k,
            LD_MEM => a = mem[k as usize & 15],
            ST => mem[k as usize & 15] = a,
            TAX => x = a,
            ALU_ADD_X => a = a.wrapping_add(x),
            ALU_MUL_K => a = a.wrapping_mul(k),
            ALU_SUB_K => a = a.wrapping_sub(k),
            ALU_DIV_K => a = a.checked_div(k).unwrap_or(0),
            ALU_RSH_K => a = a.checked_shr(k).unwrap_or(0),
            ALU_XOR_X => a ^= x,
            JEQ_K | JSET_K => {
                let hit = if ins.code == JEQ_K {
                    a == k
                } else {
                    a & k != 0
                };
                pc += usize::from(if hit { ins.jt } else { ins.jf });
            }
            JA => pc += k as usize,
            RET_A => return a,
            RET_K => return k,
            _ => return 0,
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::flow::flow_shard;
    use crate::wire::{FrameBuilder, TcpFlags};
    use std::net::{Ipv4Addr, SocketAddrV4};

    #[test]
    fn flow_program_matches_flow_shard() {
        let prog = program(SteerRule::Flow);
        for i in 0..500u32 {
            let src = Ipv4Addr::from(0x0a00_0000 + i * 7);
            let dst = Ipv4Addr::new(198, 51, 100, (i % 250) as u8);
            let (sp, dp) = (1024 + i as u16 * 3, 80 + (i % 7) as u16);
            let f = FrameBuilder::tcp(
                SocketAddrV4::new(src, sp),
                SocketAddrV4::new(dst, dp),
                TcpFlags::SYN,
            )
            .build();
            for shards in [2u16, 3, 4] {
                let h = interpret(&prog, &f);
                assert_eq!(
                    (h % u32::from(shards)) as u16,
                    flow_shard(src, dst, sp, dp, 6, shards)
                );
            }
            let e = FrameBuilder::icmp_echo_request(src, dst, i as u16, 1).build();
            assert_eq!(
                (interpret(&prog, &e) % 4) as u16,
                flow_shard(src, dst, 0, 0, 1, 4)
            );
        }
    }

    #[test]
    fn port_block_program() {
        let prog = program(SteerRule::DstPortBlock {
            range_start: 1024,
            block: 64,
        });
        let src = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 10), 80);
        for port in [1024u16, 1087, 1088, 5000, 65535] {
            let f = FrameBuilder::udp(src, SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 10), port))
                .build();
            assert_eq!(interpret(&prog, &f), u32::from(port - 1024) / 64);
        }
        let e = FrameBuilder::icmp_echo_reply(
            Ipv4Addr::new(198, 51, 100, 10),
            Ipv4Addr::new(203, 0, 113, 10),
            2048,
            1,
        )
        .build();
        assert_eq!(interpret(&prog, &e), (2048 - 1024) / 64);
        assert_eq!(interpret(&prog, &[0u8; 10]), 0);
    }
}
