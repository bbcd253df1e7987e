//! Live per-cloud state the router reads: the drain flag (kill switch).
//!
//! The map of clouds is fixed at start, so reads are lock-free atomics.
//! Circuit breakers join here in the routing issue.

use anycloud_router::CloudState;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct CloudStates {
    drained: HashMap<String, AtomicBool>,
}

impl CloudStates {
    pub fn new<'a>(clouds: impl IntoIterator<Item = &'a str>) -> CloudStates {
        CloudStates {
            drained: clouds
                .into_iter()
                .map(|c| (c.to_string(), AtomicBool::new(false)))
                .collect(),
        }
    }

    /// Sets the drain flag; false if the cloud is unknown.
    pub fn set_drained(&self, cloud: &str, drained: bool) -> bool {
        match self.drained.get(cloud) {
            Some(flag) => {
                flag.store(drained, Ordering::Release);
                true
            }
            None => false,
        }
    }
}

impl CloudState for CloudStates {
    fn is_drained(&self, cloud: &str) -> bool {
        self.drained
            .get(cloud)
            .is_some_and(|f| f.load(Ordering::Acquire))
    }

    fn is_breaker_open(&self, _cloud: &str) -> bool {
        false
    }
}
