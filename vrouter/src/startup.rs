//! Start-up: our XDP programs on the uplinks, and the workers spawned and pinned, each
//! with its uplink sockets open before it reports ready. Endpoints are not opened here:
//! `NodeState` installs them into their slots afterwards, as it does while running.

use crate::config::Config;
use crate::counters::Counters;
use crate::host::{add_local_prefixes, attach, WorkerHost};
use crate::io::afxdp::xsk::Opener;
use crate::io::afxdp::AfXdpIo;
use crate::io::mailbox::Mailbox;
use crate::io::PortSpec;
use crate::kroute::KernelRoutes;
use crate::nexthop::PortId;
use crate::node::plan::{Plan, Slot};
use crate::node::tables::Tables;
use crate::pipeline::{Pipeline, Port};
use crate::restart::FdStore;
use crate::worker::Worker;
use crate::xdp::{XdpProgram, XdpRole};
use ipnet::IpNet;
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use tracing::warn;

/// The node's own addresses as host prefixes.
pub fn local_prefixes(config: &Config) -> Vec<IpNet> {
    config
        .node_ips
        .iter()
        .map(|n| IpNet::new(n.addr(), n.max_prefix_len()).expect("a host prefix"))
        .collect()
}

/// Our programs on the uplinks: the node's addresses come to us (our pools' and
/// endpoints' are added as they are installed).
fn attach_uplinks(config: &Config, plan: &Plan, store: &Arc<FdStore>) -> io::Result<WorkerHost> {
    let local = local_prefixes(config);
    let (mut uplinks, mut napi) = (Vec::new(), Vec::new());
    for u in &plan.ports.uplinks {
        // The last run's program, still attached (kept in systemd's store), or a new one.
        let prog = match store.take_xdp(&u.name) {
            Some(p) => p,
            None => attach(&u.name, XdpRole::Uplink, config.xdp_mode)?,
        };
        store.keep_xdp(&prog);
        add_local_prefixes(&prog, &local)?;
        napi.push(config.afxdp.apply_napi(&u.name)?);
        uplinks.push(Arc::new(prog));
    }
    Ok(WorkerHost {
        workers: Vec::new(),
        uplinks,
        endpoints: HashMap::new(),
        xdp_mode: config.xdp_mode,
        local,
        routes: KernelRoutes::new()?,
        spares: crate::host::SparePrograms::start(),
        reaper: crate::host::Reaper::start()?,
        store: store.clone(),
        openers: Vec::new(),
        napi,
        nat: crate::nat_ports::NatPorts::new(
            config
                .conntrack
                .nat_range()
                .unwrap_or(crate::conntrack::snat::NAT_PORTS),
        ),
    })
}

/// Worker `w`'s pipeline over the live tables: its slots' next hops (whose frames it
/// checks the source of), ICMP errors from the node's first addresses, the overlay.
pub fn worker_pipeline(
    config: &Config,
    plan: &Plan,
    tables: &Tables,
    ports: &Arc<[Port]>,
    counters: &Arc<Counters>,
    w: usize,
) -> Pipeline {
    let mut by_port = vec![None; plan.ports.ports.len()];
    for s in plan.ports.free_slots.iter().filter(|s| s.worker == w) {
        by_port[s.port.0 as usize] = Some(s.nh);
    }
    // ICMP errors come from the node's first address of each family.
    let node_v4 = plan.overlay.local_v4.first().map(|&a| Ipv4Addr::from(a));
    let node_v6 = plan.overlay.local_v6.first().map(|&a| Ipv6Addr::from(a));
    Pipeline::new(
        tables.fib4.reader(),
        tables.fib6.reader(),
        tables.nexthops.clone(),
        ports.clone(),
        counters.clone(),
        w,
    )
    .with_icmp(
        node_v4.unwrap_or(Ipv4Addr::UNSPECIFIED),
        node_v6.unwrap_or(Ipv6Addr::UNSPECIFIED),
        config.icmp_rate,
    )
    .with_pod_nexthops(by_port)
    .with_overlay(tables.tunnels.clone(), plan.overlay.clone())
    .with_groups(tables.groups.clone())
    .with_conntrack(
        config.conntrack.max_flows / config.workers.count.max(1),
        config
            .conntrack
            .nat_range()
            .unwrap_or(crate::conntrack::snat::NAT_PORTS),
        config.workers.count,
    )
}

/// Workers running, and what the control loop keeps of them.
pub struct Started {
    pub threads: Vec<JoinHandle<()>>,
    pub host: WorkerHost,
    pub counters: Arc<Counters>,
    /// The largest endpoint MTU the workers' frames carry.
    pub endpoint_mtu_limit: u16,
}

/// Attach our programs and start the workers on `plan` and `tables`; returns once every
/// worker has its sockets open (or the first error, with the workers stopped).
pub fn start_workers(
    config: &Config,
    plan: &Plan,
    tables: &Tables,
    stop: &Arc<AtomicBool>,
    store: &Arc<FdStore>,
) -> io::Result<Started> {
    let t0 = std::time::Instant::now();
    store.release_workers_from(config.workers.count);
    let mut host = attach_uplinks(config, plan, store)?;
    host.sync_nat(plan.overlay.nat_wanted())?;
    let attached_ms = t0.elapsed().as_secs_f64() * 1e3;
    let ports: Arc<[Port]> = plan.ports.ports.clone().into();
    let counters = Arc::new(Counters::new(config.workers.count));
    let cores = config.workers.cores();
    // Every worker's frames carry the largest MTU of the plan: any slot, any endpoint.
    let endpoint_mtu_limit = AfXdpIo::mtu_limit(plan.frame_mtu);

    // Frames for a pod another worker owns go through that worker's mailbox.
    let mailboxes: Vec<Arc<Mailbox>> = (0..cores.len()).map(|_| Arc::default()).collect();
    // Each worker reports ready with its socket opener (endpoints' sockets are bound by
    // the control side).
    let (ready_tx, ready_rx) = mpsc::channel::<(usize, io::Result<Opener>)>();
    let mut threads = Vec::new();
    let mut commands = Vec::new();
    let port_count = plan.ports.ports.len();
    for (w, &core) in cores.iter().enumerate() {
        let specs: Vec<(PortId, PortSpec)> = plan
            .ports
            .uplinks
            .iter()
            .map(|u| {
                (
                    u.port,
                    PortSpec::Xsk {
                        ifname: u.name.clone(),
                        queue: u.queues[w],
                        uplink: true,
                    },
                )
            })
            .collect();
        let my_slots: Vec<Slot> = plan
            .ports
            .free_slots
            .iter()
            .filter(|s| s.worker == w)
            .copied()
            .collect();
        let mut outboxes: Vec<Option<Arc<Mailbox>>> = vec![None; port_count];
        for s in plan.ports.free_slots.iter().filter(|s| s.worker != w) {
            outboxes[s.port.0 as usize] = Some(mailboxes[s.worker].clone());
        }
        let inbox = mailboxes[w].clone();
        let all_mailboxes = mailboxes.clone();
        // The uplinks' programs steer this worker's queue to its sockets; the worker
        // keeps them to unregister its sockets at its stop. Endpoints' programs belong
        // to the host alone, so closing an endpoint detaches its program.
        let steering: Vec<(PortId, Arc<XdpProgram>, u32)> = plan
            .ports
            .uplinks
            .iter()
            .zip(&host.uplinks)
            .map(|(u, p)| (u.port, p.clone(), u.queues[w]))
            .collect();
        let mut pipeline = worker_pipeline(config, plan, tables, &ports, &counters, w);
        pipeline.offline();
        let nexthops = tables.nexthops.clone();
        let stop = stop.clone();
        let ready = ready_tx.clone();
        let poll_mode = config.workers.poll_mode;
        let (cmd_tx, cmd_rx) = mpsc::channel();
        commands.push(crate::worker::WorkerTx::new(cmd_tx, mailboxes[w].clone()));
        let spare = my_slots.len();
        let mtu = plan.frame_mtu;
        let tuning = config.afxdp;
        let store = store.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("worker-{w}"))
                .spawn(move || {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                        warn!(worker = w, core, "could not pin to core");
                    }
                    let frame_size = AfXdpIo::frame_size_for(mtu);
                    let kept = store.take_worker(w, frame_size, |sockets| {
                        crate::io::afxdp::frames_kept_need(&specs, sockets)
                    });
                    let io = match AfXdpIo::open_kept(&specs, mtu, spare, kept, tuning).and_then(
                        |mut io| {
                            io.connect_workers(inbox, outboxes, all_mailboxes)?;
                            for (ifname, queue) in std::mem::take(&mut io.not_taken_over) {
                                store.forget_socket(w, &ifname, queue);
                            }
                            let (umem, sockets) = io.keepable();
                            store.keep_umem(w, frame_size, umem);
                            for (ifname, queue, fd) in sockets {
                                store.keep_socket(w, ifname, queue, fd);
                            }
                            for (port, prog, queue) in &steering {
                                if let Some(fd) = io.socket_fd(*port) {
                                    prog.register_socket(*queue, fd)?;
                                }
                            }
                            Ok(io)
                        },
                    ) {
                        Ok(io) => io,
                        Err(e) => {
                            let _ = ready.send((w, Err(e)));
                            return;
                        }
                    };
                    let _ = ready.send((w, io.opener()));
                    let mut worker = Worker::new(io, pipeline, nexthops, Vec::new(), poll_mode)
                        .with_commands(cmd_rx)
                        .with_fd_store(store.clone(), w);
                    worker.run(&stop);
                    // With the sockets kept for the next run, the programs go on steering
                    // to them (the kernel fills their rings until it takes over).
                    if !store.active() {
                        for (_, prog, queue) in &steering {
                            let _ = prog.unregister_socket(*queue);
                        }
                    }
                })?,
        );
    }
    drop(ready_tx);
    let mut failure = None;
    let mut openers: Vec<Option<Opener>> = (0..threads.len()).map(|_| None).collect();
    for _ in 0..threads.len() {
        match ready_rx.recv() {
            Ok((w, Ok(o))) => openers[w] = Some(o),
            Ok((_, Err(e))) => failure = failure.or(Some(e)),
            Err(_) => failure = failure.or(Some(io::Error::other("a worker died at start"))),
        }
    }
    if let Some(e) = failure {
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            let _ = t.join();
        }
        return Err(e);
    }
    host.workers = commands;
    host.openers = openers.into_iter().flatten().collect();
    tracing::debug!(
        attached_ms,
        sockets_ms = t0.elapsed().as_secs_f64() * 1e3 - attached_ms,
        "uplinks' XDP attached, workers' sockets open"
    );
    Ok(Started {
        threads,
        host,
        counters,
        endpoint_mtu_limit,
    })
}
