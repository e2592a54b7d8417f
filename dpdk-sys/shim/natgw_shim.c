/*
 * natgw DPDK shim: see natgw_shim.h. Every function here only forwards to DPDK's inline API or
 * reads a compile-time constant; no state.
 */
#include <string.h>

#include <rte_errno.h>
#include <rte_lcore.h>

#include "natgw_shim.h"

static const struct natgw_constants NATGW_CONSTANTS = {
	.rss_ip = RTE_ETH_RSS_IP,
	.rss_tcp = RTE_ETH_RSS_TCP,
	.rss_udp = RTE_ETH_RSS_UDP,
	.rss_nonfrag_ipv4_tcp = RTE_ETH_RSS_NONFRAG_IPV4_TCP,
	.rss_nonfrag_ipv4_udp = RTE_ETH_RSS_NONFRAG_IPV4_UDP,
	.rss_l4_dst_only = RTE_ETH_RSS_L4_DST_ONLY,
	.rx_offload_ipv4_cksum = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM,
	.rx_offload_udp_cksum = RTE_ETH_RX_OFFLOAD_UDP_CKSUM,
	.rx_offload_tcp_cksum = RTE_ETH_RX_OFFLOAD_TCP_CKSUM,
	.tx_offload_mbuf_fast_free = RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE,
	.rx_l4_cksum_mask = RTE_MBUF_F_RX_L4_CKSUM_MASK,
	.rx_l4_cksum_none = RTE_MBUF_F_RX_L4_CKSUM_NONE,
	.rx_l4_cksum_bad = RTE_MBUF_F_RX_L4_CKSUM_BAD,
	.rx_ip_cksum_mask = RTE_MBUF_F_RX_IP_CKSUM_MASK,
	.rx_ip_cksum_bad = RTE_MBUF_F_RX_IP_CKSUM_BAD,
	.mbuf_default_buf_size = RTE_MBUF_DEFAULT_BUF_SIZE,
	.pktmbuf_headroom = RTE_PKTMBUF_HEADROOM,
	.mempool_cache_max_size = RTE_MEMPOOL_CACHE_MAX_SIZE,
	.max_lcore = RTE_MAX_LCORE,
	.lcore_id_any = LCORE_ID_ANY,
	.socket_id_any = SOCKET_ID_ANY,
	.max_ethports = RTE_MAX_ETHPORTS,
	.eth_link_up = RTE_ETH_LINK_UP,
};

const struct natgw_constants *natgw_constants(void)
{
	return &NATGW_CONSTANTS;
}

int natgw_errno(void)
{
	return rte_errno;
}

unsigned int natgw_lcore_id(void)
{
	return rte_lcore_id();
}

uint16_t natgw_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
			    uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t natgw_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
			    uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *natgw_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int natgw_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void natgw_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

char *natgw_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

void *natgw_pktmbuf_mtod(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

uint32_t natgw_pktmbuf_pkt_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_pkt_len(m);
}

uint16_t natgw_pktmbuf_data_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_data_len(m);
}

uint16_t natgw_pktmbuf_nb_segs(const struct rte_mbuf *m)
{
	return m->nb_segs;
}

uint16_t natgw_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

uint64_t natgw_pktmbuf_ol_flags(const struct rte_mbuf *m)
{
	return m->ol_flags;
}

int32_t natgw_mbuf_copy_out(const struct rte_mbuf *m, uint8_t *dst, uint32_t cap,
			    uint64_t *ol_flags)
{
	uint32_t total = rte_pktmbuf_pkt_len(m);
	uint32_t done = 0;
	const struct rte_mbuf *seg;

	*ol_flags = m->ol_flags;
	if (total > cap)
		return -1;
	if (m->nb_segs == 1) {
		if (m->data_len != total)
			return -1;
		memcpy(dst, rte_pktmbuf_mtod(m, const uint8_t *), total);
		return (int32_t)total;
	}
	for (seg = m; seg != NULL; seg = seg->next) {
		uint32_t len = seg->data_len;

		if (len > total - done)
			return -1;
		memcpy(dst + done, rte_pktmbuf_mtod(seg, const uint8_t *), len);
		done += len;
	}
	return done == total ? (int32_t)total : -1;
}

int natgw_mbuf_fill(struct rte_mbuf *m, const uint8_t *src, uint16_t len)
{
	char *p = rte_pktmbuf_append(m, len);

	if (p == NULL)
		return -1;
	memcpy(p, src, len);
	return 0;
}
