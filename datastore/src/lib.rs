//! The cluster datastore: Calico's etcdv3 data model, read and written byte for byte as
//! Calico's libcalico-go does, so vrouterd nodes and kernel Calico nodes share one etcd.

pub mod block;
pub mod etcd_process;
pub mod ipam;
pub mod keys;
pub mod member;
pub mod model;
pub mod policy;
pub mod selector;
pub mod store;
pub mod sync;
pub mod workload;
