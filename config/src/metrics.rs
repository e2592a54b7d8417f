//! `[metrics]`: where the Prometheus text endpoint listens.
//!
//! Layer: config (slow path). The endpoint itself is served by the appliance's slow path; this
//! module only validates the socket address.

use std::net::{Ipv4Addr, SocketAddr};

use crate::check::{quoted, span};
use crate::error::{ErrorKind, Located};
use crate::raw::RawMetrics;

/// The default listen address: loopback only, port 9464 (the Prometheus exporter convention).
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9464);

/// The metrics endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    listen: SocketAddr,
}

impl MetricsConfig {
    /// The address the HTTP endpoint binds to (port 0: any free port).
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// Validates the section.
    pub(crate) fn from_raw(raw: &RawMetrics) -> Result<Self, Located> {
        let listen = match &raw.listen {
            None => DEFAULT_LISTEN,
            Some(l) => l.get_ref().trim().parse().map_err(|_| {
                Located::at(
                    "metrics.listen",
                    span(l),
                    ErrorKind::BadValue {
                        value: quoted(l.get_ref()),
                        valid: "an address and port like \"127.0.0.1:9464\" or \"[::1]:9464\""
                            .to_string(),
                    },
                )
            })?,
        };
        Ok(MetricsConfig { listen })
    }
}
