//! Calico resources and IPAM records as stored in etcd.
