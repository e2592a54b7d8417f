//! libFuzzer target: arbitrary bytes, cut into bursts of frames, fed to both sides of two NAT
//! core shards with live sessions (see `natgw_dataplane_fuzz::run` for the input format and the
//! invariants checked).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    natgw_dataplane_fuzz::run(data);
});
