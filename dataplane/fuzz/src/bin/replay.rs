//! Runs the `process_burst` fuzz target's body over files, without libFuzzer (stable Rust):
//!
//! ```text
//! cargo run --no-default-features --bin replay -- DIR_OR_FILE...   # replay a corpus / crash
//! cargo run --no-default-features --bin replay -- --seeds DIR      # write the seed corpus
//! cargo run --no-default-features --bin replay -- --random N       # N random inputs
//! ```

use std::path::Path;

fn replay(path: &Path, count: &mut usize) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.path());
        for e in entries {
            replay(&e.path(), count)?;
        }
    } else {
        let data = std::fs::read(path)?;
        natgw_dataplane_fuzz::run(&data);
        *count += 1;
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--seeds") if args.len() == 2 => {
            let dir = Path::new(&args[1]);
            if let Err(e) = std::fs::create_dir_all(dir) {
                eprintln!("cannot create {}: {e}", dir.display());
                return std::process::ExitCode::FAILURE;
            }
            for (i, seed) in natgw_dataplane_fuzz::seeds().iter().enumerate() {
                natgw_dataplane_fuzz::run(seed);
                let p = dir.join(format!("seed-{i:03}"));
                if let Err(e) = std::fs::write(&p, seed) {
                    eprintln!("cannot write {}: {e}", p.display());
                    return std::process::ExitCode::FAILURE;
                }
            }
            println!(
                "wrote {} seeds to {}",
                natgw_dataplane_fuzz::seeds().len(),
                dir.display()
            );
        }
        Some("--random") if args.len() == 2 => {
            let Ok(n) = args[1].parse::<u64>() else {
                eprintln!("--random needs a count");
                return std::process::ExitCode::FAILURE;
            };
            let seeds = natgw_dataplane_fuzz::seeds();
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            let mut next = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            for i in 0..n {
                // Mutate a seed: flip, overwrite, cut or append bytes.
                let mut d = seeds[(next() % seeds.len() as u64) as usize].clone();
                for _ in 0..(next() % 8) {
                    let r = next();
                    match r % 4 {
                        0 if !d.is_empty() => {
                            let at = (r >> 8) as usize % d.len();
                            d[at] ^= 1 << ((r >> 40) % 8);
                        }
                        1 if !d.is_empty() => {
                            let at = (r >> 8) as usize % d.len();
                            d[at] = (r >> 48) as u8;
                        }
                        2 => d.truncate((r >> 8) as usize % (d.len() + 1)),
                        _ => d.extend_from_slice(&r.to_le_bytes()[..(r % 8) as usize]),
                    }
                }
                natgw_dataplane_fuzz::run(&d);
                if i % 10_000 == 9_999 {
                    println!("{} inputs", i + 1);
                }
            }
            println!("{n} random inputs: no failure");
        }
        Some(_) => {
            let mut count = 0;
            for a in &args {
                if let Err(e) = replay(Path::new(a), &mut count) {
                    eprintln!("{a}: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
            println!("{count} inputs: no failure");
        }
        None => {
            eprintln!("usage: replay DIR_OR_FILE... | --seeds DIR | --random N");
            return std::process::ExitCode::FAILURE;
        }
    }
    std::process::ExitCode::SUCCESS
}
