//! vrouterd: the per-node virtual router (run by systemd). See `vrouter::cli`.

fn main() {
    vrouter::cli::main_with_args(std::env::args_os());
}
