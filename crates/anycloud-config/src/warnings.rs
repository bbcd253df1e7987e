//! Things in a valid config that are probably not what was meant: the
//! config loads and serves, but `anycloud config check` says so. Unlike
//! [`crate::validate`] these never stop the gateway.

use crate::{Config, Problem};

/// Every warning for `c`, each with its key path (no line: the caller
/// locates it in the text when it has it).
pub fn warnings(c: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(p) = &c.agreements.primary {
        for (mi, m) in c.models.iter().enumerate() {
            if !p.declined_models.iter().any(|d| d == &m.name) {
                continue;
            }
            for (di, d) in m.deployments.iter().enumerate() {
                if d.cloud == p.cloud {
                    out.push(Problem {
                        key: format!("models[{mi}].deployments[{di}]"),
                        line: None,
                        message: format!(
                            "the primary `{}` declined `{}` (agreements.primary.declined_models), \
                             so this deployment is never used (routing skips it as declined_by_primary)",
                            p.cloud, m.name
                        ),
                    });
                }
            }
        }
    }
    for (mi, m) in c.models.iter().enumerate() {
        let prefill = m.deployments.iter().any(|d| {
            d.capabilities
                .contains(&anycloud_types::Capability::Prefill)
        });
        if c.routing.resumes(Some(m)) && !prefill && m.deployments.len() > 1 {
            out.push(Problem {
                key: format!("models[{mi}]"),
                line: None,
                message: format!(
                    "streams of `{}` are resumed (routing.resume_streams) but none of its \
                     deployments declares the capability `prefill`, so no stream can continue",
                    m.name
                ),
            });
        }
    }
    out.extend(crate::residency::warnings(c));
    out
}
