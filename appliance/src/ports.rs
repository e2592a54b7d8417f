//! Opening the two interfaces with the backend each names, DPDK's EAL and mbuf pool included (slow path,
//! start-up and shutdown).

use anyhow::Context as _;
use natgw_config::{Config, Driver};
use natgw_dataplane::port::{self, Port, PortConfig};

/// What stays open beside the ports' queues: DPDK's pool and port controls, until shutdown.
#[derive(Default)]
pub struct Backends {
    #[cfg(feature = "dpdk")]
    pool: Option<std::sync::Arc<port::dpdk::MbufPool>>,
    #[cfg(feature = "dpdk")]
    controls: Vec<port::dpdk::DpdkControl>,
    /// Which side each DPDK control belongs to.
    #[cfg(feature = "dpdk")]
    sides: Vec<&'static str>,
}

impl Backends {
    /// Start what the config's drivers need (DPDK: the EAL from `[dpdk].eal_args` and one mbuf pool of
    /// `[dpdk].mbufs` shared by both ports).
    pub fn start(cfg: &Config) -> anyhow::Result<Backends> {
        #[cfg(feature = "dpdk")]
        if cfg.uses_dpdk() {
            port::dpdk::init_eal(cfg.dpdk().eal_args()).context("starting the DPDK EAL")?;
            let pool = port::dpdk::MbufPool::create(cfg.dpdk().mbufs(), None)
                .context("creating the DPDK mbuf pool")?;
            return Ok(Backends {
                pool: Some(pool),
                controls: Vec::new(),
                sides: Vec::new(),
            });
        }
        #[cfg(not(feature = "dpdk"))]
        if cfg.uses_dpdk() {
            anyhow::bail!(
                "driver = \"dpdk\" needs an appliance built with the dpdk feature \
                 (cargo build --release -p appliance --features dpdk)"
            );
        }
        Ok(Backends::default())
    }

    /// Open one interface (`side` names it in metrics) with `queues` queues.
    pub fn open(
        &mut self,
        side: &'static str,
        driver: Driver,
        pc: &PortConfig,
        queues: usize,
    ) -> anyhow::Result<Port> {
        #[cfg(feature = "dpdk")]
        if driver == Driver::Dpdk {
            let opts = port::dpdk::DpdkOptions {
                pool: self.pool.clone(),
                ..port::dpdk::DpdkOptions::default()
            };
            let p = port::dpdk::open_with(pc, queues, &opts)
                .with_context(|| format!("opening DPDK device {}", pc.device))?;
            log::info!("{}: link {}", pc.device, p.control.link());
            self.controls.push(p.control);
            self.sides.push(side);
            return Ok(p.port);
        }
        let _ = (driver, side);
        port::open(pc, queues).with_context(|| format!("opening {}", pc.device))
    }

    /// Link state of the ports whose backend reports one (DPDK), in the order they were opened.
    pub fn links(&self) -> Vec<(&'static str, bool, u32)> {
        #[cfg(feature = "dpdk")]
        {
            let links = self.controls.iter().map(|c| c.link());
            self.sides
                .iter()
                .zip(links)
                .map(|(s, l)| (*s, l.up, l.speed_mbps))
                .collect()
        }
        #[cfg(not(feature = "dpdk"))]
        Vec::new()
    }

    /// Close what is left once the workers (and their queues) are gone.
    pub fn shutdown(self) {
        #[cfg(feature = "dpdk")]
        {
            let had_eal = self.pool.is_some();
            drop(self.controls);
            drop(self.pool);
            if had_eal {
                if let Err(e) = port::dpdk::cleanup_eal() {
                    log::warn!("DPDK EAL cleanup: {e}");
                }
            }
        }
    }
}
