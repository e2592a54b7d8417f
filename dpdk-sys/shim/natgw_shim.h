/*
 * natgw DPDK shim: real (linkable) functions wrapping DPDK's `static inline` API, plus a table of
 * constants whose macros bindgen cannot evaluate (they expand function-like macros such as
 * RTE_BIT64). Compiled by build.rs with the `cc` crate, only with the `dpdk` feature.
 */
#ifndef NATGW_SHIM_H
#define NATGW_SHIM_H

#include <stdint.h>

#include <rte_config.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

/* Constants of DPDK 22.11 that are macros built from function-like macros. */
struct natgw_constants {
	uint64_t rss_ip;
	uint64_t rss_tcp;
	uint64_t rss_udp;
	uint64_t rss_nonfrag_ipv4_tcp;
	uint64_t rss_nonfrag_ipv4_udp;
	uint64_t rss_l4_dst_only;
	uint64_t rx_offload_ipv4_cksum;
	uint64_t rx_offload_udp_cksum;
	uint64_t rx_offload_tcp_cksum;
	uint64_t tx_offload_mbuf_fast_free;
	uint64_t rx_l4_cksum_mask;
	uint64_t rx_l4_cksum_none;
	uint64_t rx_l4_cksum_bad;
	uint64_t rx_ip_cksum_mask;
	uint64_t rx_ip_cksum_bad;
	uint32_t mbuf_default_buf_size;
	uint32_t pktmbuf_headroom;
	uint32_t mempool_cache_max_size;
	uint32_t max_lcore;
	uint32_t lcore_id_any;
	int32_t socket_id_any;
	uint16_t max_ethports;
	uint16_t eth_link_up;
};

/* The constants above, filled at compile time of the shim. */
const struct natgw_constants *natgw_constants(void);

/* rte_errno of the calling thread. */
int natgw_errno(void);
/* rte_lcore_id() of the calling thread (LCORE_ID_ANY for unregistered threads). */
unsigned int natgw_lcore_id(void);

uint16_t natgw_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
			    uint16_t nb_pkts);
uint16_t natgw_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
			    uint16_t nb_pkts);

struct rte_mbuf *natgw_pktmbuf_alloc(struct rte_mempool *mp);
int natgw_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count);
void natgw_pktmbuf_free(struct rte_mbuf *m);
char *natgw_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
void *natgw_pktmbuf_mtod(struct rte_mbuf *m);
uint32_t natgw_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t natgw_pktmbuf_data_len(const struct rte_mbuf *m);
uint16_t natgw_pktmbuf_nb_segs(const struct rte_mbuf *m);
uint16_t natgw_pktmbuf_tailroom(const struct rte_mbuf *m);
uint64_t natgw_pktmbuf_ol_flags(const struct rte_mbuf *m);

/*
 * Copies the whole packet of `m` (all segments) to `dst`, which holds `cap` bytes, and stores the
 * mbuf's offload flags in `*ol_flags`. Returns the packet length, or -1 (nothing copied) when the
 * packet is longer than `cap` or its segment chain is inconsistent. Does not free `m`.
 */
int32_t natgw_mbuf_copy_out(const struct rte_mbuf *m, uint8_t *dst, uint32_t cap,
			    uint64_t *ol_flags);

/*
 * Makes the freshly allocated (reset) mbuf `m` hold exactly the `len` bytes at `src`. Returns 0, or
 * -1 (mbuf unchanged) when `len` exceeds its tailroom.
 */
int natgw_mbuf_fill(struct rte_mbuf *m, const uint8_t *src, uint16_t len);

#endif
