//! `config`: bytes read as vrouterd's TOML file: parsed and validated as `--check`
//! does (not the checks that look at this machine), an error's line located, and a
//! valid file planned (ports, next hops, tunnels) and sized on a pretend host.

use vrouter::config::Config;
use vrouter::node::plan::Plan;
use vrouter::node::tables::Capacity;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse_located(text) {
        Err((e, at)) => {
            // A located error points inside the text: line and column from 1.
            if let Some((line, column)) = at {
                assert!(
                    line >= 1 && line <= text.lines().count().max(1) + 1 && column >= 1,
                    "line {line}, column {column} of {e}"
                );
            }
        }
        Ok(config) => {
            let _ = config.labels();
            for p in &config.pools {
                let _ = (p.block_size(), p.allowed_uses(), p.for_workloads());
                let _ = p.selects(&config.labels());
            }
            let _ = config.workers.cores();
            let _ = config.conntrack.nat_range();
            if let Ok(plan) = Plan::new(&config, &crate::api::info) {
                let _ = Capacity::for_start(&plan, &config);
            }
        }
    }
}
