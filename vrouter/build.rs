//! Compiles the vRouter's XDP program (`xdp/vrouter_xdp.c`) into `$OUT_DIR/vrouter_xdp.o`,
//! which `src/xdp.rs` embeds with `include_bytes!`. Needs only clang (the C file includes no
//! headers); `$CLANG` overrides the compiler.

use std::env;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "xdp/vrouter_xdp.c";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CLANG");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let object = out_dir.join("vrouter_xdp.o");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());

    let output = Command::new(&clang)
        .args([
            "-O2", "-g", "-target", "bpf", "-Wall", "-Werror", "-c", SOURCE, "-o",
        ])
        .arg(&object)
        .output();
    match output {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "\n\nvrouter: compiling the XDP program {SOURCE} with `{clang}` failed ({}):\n{}{}\n",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        ),
        Err(err) if err.kind() == ErrorKind::NotFound => panic!(
            "\n\nvrouter: `{clang}` not found. Building the XDP program {SOURCE} needs clang with \
             the BPF target (Debian/Ubuntu: `apt-get install clang`), or set CLANG=/path/to/clang.\n"
        ),
        Err(err) => panic!("\n\nvrouter: running `{clang}` to build {SOURCE} failed: {err}\n"),
    }
}
