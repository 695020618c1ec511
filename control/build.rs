//! Compiles proto/vrouter.proto with protox (pure Rust): no system protoc needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/vrouter.proto");
    let fds = protox::compile(["vrouter.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // vrouterctl --json prints the replies as they are.
        .type_attribute(".", "#[derive(serde::Serialize)]")
        .compile_fds(fds)?;
    Ok(())
}
