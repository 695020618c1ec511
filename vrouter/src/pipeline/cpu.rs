//! [`Pipeline::process`] compiled twice, as the FIB lookups are (fib/src/cpu.rs): once
//! for baseline x86-64 and once for the fast path's CPU features, so the whole burst
//! (classification, lookups, rewrites) runs the code its readers run. The choice is the
//! IPv4 reader's, made once per process; one test per burst.

// Calling a `#[target_feature]` function is `unsafe`: the CPU must have the features.
#![allow(unsafe_code)]

use super::Pipeline;
use crate::burst::Action;
use crate::nexthop::PortId;

impl Pipeline {
    /// Process up to BURST frames received on `rx`. `frames[i]` is the whole buffer
    /// (replies may grow a frame), `lens[i]` the bytes received; `actions[i]` is set.
    pub fn process(
        &mut self,
        rx: PortId,
        frames: &mut [&mut [u8]],
        lens: &[usize],
        actions: &mut [Action],
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.fib4.cpu_path() == fib::cpu::Path::Fast {
            // SAFETY: a reader is on the fast path only when the CPU has every feature
            // of fib::cpu::FAST_FEATURES (fib checks it), the features enabled below.
            unsafe { self.process_fast(rx, frames, lens, actions) };
            return;
        }
        self.process_body(rx, frames, lens, actions)
    }

    /// `process_body` built for fib::cpu::FAST_FEATURES (an attribute takes a literal).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt,bmi1,bmi2,lzcnt,movbe,avx2")]
    fn process_fast(
        &mut self,
        rx: PortId,
        frames: &mut [&mut [u8]],
        lens: &[usize],
        actions: &mut [Action],
    ) {
        self.process_body(rx, frames, lens, actions)
    }
}
