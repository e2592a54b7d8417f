/* What bindgen sees: the DPDK headers we bind (allowlisted in build.rs) and our shim. */
#include <rte_config.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "natgw_shim.h"
