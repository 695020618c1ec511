//! Calico's label selector syntax (IPPool nodeSelector, BGPPeer nodeSelector).
