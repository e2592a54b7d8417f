//! Build script of `natgw-dpdk-sys`.
//!
//! Without the `dpdk` feature it does nothing at all (the crate is empty), so the default
//! workspace build needs neither DPDK nor libclang nor a C compiler.
//!
//! With `dpdk`: (1) `pkg-config` finds libdpdk >= 22.11 and emits its link flags; (2) the C shim
//! (`shim/natgw_shim.c`, DPDK's `static inline` functions made linkable) is compiled with DPDK's
//! cflags by the `cc` crate; (3) `bindgen` generates Rust declarations for an allowlist of the
//! EAL, ethdev, mbuf and mempool API plus the shim, written to `$OUT_DIR/bindings.rs`.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "dpdk")]
    dpdk::build();
}

#[cfg(feature = "dpdk")]
mod dpdk {
    use std::env;
    use std::path::PathBuf;
    use std::process::Command;

    /// The oldest DPDK whose API (the `RTE_ETH_*` names, `rte_eth_fp_ops`) we bind.
    const MIN_VERSION: &str = "22.11";

    /// DPDK's compiler flags as pkg-config prints them (`-I...`, `-include rte_config.h`,
    /// `-march=...`). The `pkg-config` crate keeps only include paths and defines, but DPDK's
    /// headers also need the forced include and the machine flags, so we ask the tool directly.
    fn cflags() -> Vec<String> {
        let tool = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
        let out = Command::new(&tool)
            .args(["--cflags", "libdpdk"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        assert!(
            out.status.success(),
            "`{tool} --cflags libdpdk` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // Pair "-include FILE" into one argument each for cc and clang.
        let mut flags = Vec::new();
        let mut words = text.split_whitespace();
        while let Some(w) = words.next() {
            if w == "-include" {
                if let Some(file) = words.next() {
                    flags.push(format!("-include{file}"));
                }
            } else {
                flags.push(w.to_string());
            }
        }
        flags
    }

    pub fn build() {
        println!("cargo:rerun-if-changed=shim/natgw_shim.c");
        println!("cargo:rerun-if-changed=shim/natgw_shim.h");
        println!("cargo:rerun-if-changed=shim/wrapper.h");
        println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

        let lib = pkg_config::Config::new()
            .atleast_version(MIN_VERSION)
            .probe("libdpdk")
            .unwrap_or_else(|e| {
                panic!(
                    "the `dpdk` feature needs libdpdk >= {MIN_VERSION} (Debian: apt-get install \
                     dpdk-dev libdpdk-dev pkg-config clang libclang-dev): {e}"
                )
            });
        println!("cargo:rustc-env=NATGW_DPDK_VERSION={}", lib.version);
        let flags = cflags();

        let mut cc = cc::Build::new();
        cc.file("shim/natgw_shim.c")
            .include("shim")
            .opt_level(3)
            .warnings(true);
        for f in &flags {
            cc.flag(f);
        }
        cc.compile("natgw_dpdk_shim");

        let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
        let mut b = bindgen::Builder::default()
            .header("shim/wrapper.h")
            .clang_arg("-Ishim")
            .clang_args(flags.iter().filter(|f| !f.starts_with("-march")))
            .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
            .default_enum_style(bindgen::EnumVariation::Consts)
            .derive_default(true)
            .layout_tests(true)
            .generate_comments(false)
            // We never touch the fields of these; keeping them opaque avoids binding their
            // (large, union-heavy) layouts.
            .opaque_type("rte_mempool")
            .opaque_type("rte_mbuf")
            .opaque_type("rte_device")
            .opaque_type("rte_eth_dev")
            .allowlist_function("natgw_.*")
            .allowlist_type("natgw_constants")
            .allowlist_var("RTE_ETH_MQ_.*")
            .allowlist_var("RTE_ETH_LINK_(UP|DOWN|FULL_DUPLEX|HALF_DUPLEX)")
            .allowlist_var("RTE_ETH_NAME_MAX_LEN")
            .allowlist_var("RTE_MEMPOOL_NAMESIZE");
        for f in [
            "rte_eal_init",
            "rte_eal_cleanup",
            "rte_strerror",
            "rte_socket_id",
            "rte_thread_register",
            "rte_thread_unregister",
            "rte_dev_probe",
            "rte_dev_remove",
            "rte_eth_dev_configure",
            "rte_eth_dev_info_get",
            "rte_eth_rx_queue_setup",
            "rte_eth_tx_queue_setup",
            "rte_eth_dev_start",
            "rte_eth_dev_stop",
            "rte_eth_dev_close",
            "rte_eth_dev_get_port_by_name",
            "rte_eth_dev_get_name_by_port",
            "rte_eth_dev_socket_id",
            "rte_eth_dev_adjust_nb_rx_tx_desc",
            "rte_eth_dev_is_valid_port",
            "rte_eth_dev_count_avail",
            "rte_eth_macaddr_get",
            "rte_eth_dev_get_mtu",
            "rte_eth_link_get_nowait",
            "rte_eth_stats_get",
            "rte_eth_stats_reset",
            "rte_eth_promiscuous_enable",
            "rte_pktmbuf_pool_create",
            "rte_pktmbuf_free_bulk",
            "rte_mempool_free",
            "rte_mempool_avail_count",
            "rte_mempool_in_use_count",
        ] {
            b = b.allowlist_function(f);
        }
        b.generate()
            .expect("bindgen on shim/wrapper.h (needs libclang: apt-get install libclang-dev)")
            .write_to_file(out.join("bindings.rs"))
            .expect("write bindings.rs");
    }
}
