//! `vrouter-cni`: the CNI plugin that plugs a container runtime's pods into vrouterd.
//! `spec` is the CNI specification's side (environment, configuration, errors,
//! results per version), `naming` Calico's names, `plugin` the commands over seams,
//! `system` their real sides (`link`: rtnetlink; `offload`: ethtool ioctls); `ipam` the
//! same binary answering as the IPAM plugin `vrouter-ipam`.

#[cfg(test)]
mod fake;
pub mod ipam;
pub mod link;
pub mod naming;
pub mod offload;
pub mod plugin;
pub mod spec;
pub mod system;

use spec::{code, CniError, Command, Env, NetConf};

/// One invocation, as libcni makes it: the program's name (`argv[0]`), the environment,
/// stdin; the JSON to print on stdout (None: nothing, a successful DEL / CHECK / GC / STATUS) or the error.
pub fn run(
    program: &str,
    env_var: impl Fn(&str) -> Option<String>,
    stdin: &[u8],
) -> (Option<serde_json::Value>, Option<CniError>, String) {
    // The version errors are reported in: the configuration's, if it said one.
    let said = serde_json::from_slice::<serde_json::Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .filter(|v| spec::SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| spec::LATEST.to_string());
    let env = match Env::read(&env_var) {
        Ok(e) => e,
        Err(e) => return (None, Some(e), said),
    };
    if env.command == Command::Version {
        let requested = serde_json::from_slice::<serde_json::Value>(stdin)
            .ok()
            .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string));
        return (Some(spec::version_json(requested.as_deref())), None, said);
    }
    let conf = match NetConf::parse(stdin).and_then(|c| c.validate().map(|_| c)) {
        Ok(c) => c,
        Err(e) => return (None, Some(e), said),
    };
    let as_ipam = ipam::invoked_as_ipam(program, &conf);
    let socket = (if as_ipam {
        ipam::socket(&conf)
    } else {
        conf.vrouter_socket.clone()
    })
    .unwrap_or_else(|| control::api::DEFAULT_SOCKET.to_string());
    let mut api = match system::ApiClient::new(&socket) {
        Ok(a) => a,
        Err(e) => {
            return (
                None,
                Some(
                    CniError::new(code::IO_FAILURE, "starting the API client")
                        .details(e.to_string()),
                ),
                said,
            )
        }
    };
    if as_ipam {
        let mut p = ipam::IpamPlugin {
            env: &env,
            conf: &conf,
            api: &mut api,
        };
        let result = match env.command {
            Command::Add => p.add().map(|o| Some(o.to_json(&conf.cni_version))),
            Command::Del => p.del().map(|_| None),
            Command::Check => p.check().map(|_| None),
            // The API cannot list handles: addresses of vanished containers are found
            // by `vrouterctl ipam check` (cluster) and released by the runtime's DEL.
            Command::Gc => Ok(None),
            Command::Status => p.status().map(|_| None),
            Command::Version => unreachable!("answered above"),
        };
        return finish(result, &conf);
    }
    let mut host = system::KernelHost;
    let mut ipam = system::ExecDelegate {
        path: env.path.clone(),
    };
    let mut p = plugin::Plugin {
        env: &env,
        conf: &conf,
        raw: stdin,
        api: &mut api,
        host: &mut host,
        ipam: &mut ipam,
    };
    let result = match env.command {
        Command::Add => p.add().map(|o| Some(o.to_json(&conf.cni_version))),
        Command::Del => p.del().map(|_| None),
        Command::Check => p.check().map(|_| None),
        Command::Gc => p.gc().map(|_| None),
        Command::Status => p.status().map(|_| None),
        Command::Version => unreachable!("answered above"),
    };
    finish(result, &conf)
}

fn finish(
    result: Result<Option<serde_json::Value>, CniError>,
    conf: &NetConf,
) -> (Option<serde_json::Value>, Option<CniError>, String) {
    match result {
        Ok(v) => (v, None, conf.cni_version.clone()),
        Err(e) => (None, Some(e), conf.cni_version.clone()),
    }
}
