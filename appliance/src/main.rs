//! The natgw appliance binary.
fn main() {}
