//! A plain reference model: a map of prefixes, matched by trying every length.
#![allow(dead_code)]

use fib::{Family, NextHopId};
use std::collections::HashMap;

pub struct Model<F: Family> {
    pub routes: HashMap<(F::Key, u8), u32>,
}

impl<F: Family> Default for Model<F> {
    fn default() -> Self {
        Model {
            routes: HashMap::new(),
        }
    }
}

impl<F: Family> Model<F> {
    pub fn insert(&mut self, key: F::Key, len: u8, nh: u32) -> Option<u32> {
        self.routes.insert((F::mask(key, len), len), nh)
    }
    pub fn remove(&mut self, key: F::Key, len: u8) -> Option<u32> {
        self.routes.remove(&(F::mask(key, len), len))
    }
    pub fn lookup(&self, key: F::Key) -> Option<NextHopId> {
        (0..=F::BITS)
            .rev()
            .find_map(|len| self.routes.get(&(F::mask(key, len), len)))
            .map(|&nh| NextHopId(nh))
    }
}
