//! Money arithmetic: costs in integer nano-dollars (1e-9 USD).
//!
//! A price is USD per million tokens, so `tokens × price` is micro-dollars; one more factor
//! of 1000 gives nano-dollars, rounded once per record. Everything after that (sums per
//! cloud, per model, per tenant, per day; accruals; burn-down) is integer arithmetic, so
//! every total reconciles exactly with the records it sums. Dollars as `f64` appear only at
//! the edges (JSON, tables).

use anycloud_config::Price;
use anycloud_store::{RecordedPrice, NANOS_PER_USD};
use anycloud_types::Usage;

/// Cost of `usage` at `price`, in nano-dollars: every kind of token at its own price
/// ([`Price::cost_micros`]), rounded once.
pub fn cost_nanos(price: &Price, usage: &Usage) -> i64 {
    (price.cost_micros(usage) * 1_000.0).round() as i64
}

/// What caching saved on `usage`: its cost with every cached read and write priced as plain
/// input, less its cost as billed. Negative when a write premium was not (yet) paid back.
pub fn cache_saved_nanos(price: &Price, usage: &Usage) -> i64 {
    cost_nanos(&price.uncached(), usage) - cost_nanos(price, usage)
}

/// The price as recorded with a usage record (defaults resolved).
pub fn recorded_price(price: &Price) -> RecordedPrice {
    RecordedPrice {
        input_per_mtok: price.input_per_mtok,
        output_per_mtok: price.output_per_mtok,
        cached_input_per_mtok: price.cached_input(),
        cache_write_per_mtok: price.cache_write(),
        cache_write_1h_per_mtok: price.cache_write_1h(),
    }
}

/// Nano-dollars as dollars, for display and JSON.
pub fn usd(nanos: i64) -> f64 {
    nanos as f64 / NANOS_PER_USD as f64
}

/// Dollars (from config: caps, commitments) as nano-dollars.
pub fn nanos(usd: f64) -> i64 {
    (usd * NANOS_PER_USD as f64).round() as i64
}

/// `percent` % of `nanos`, rounded to the nano-dollar. i128 keeps the product exact for any
/// amount an i64 can hold; the percentage itself is taken to 1e-6 of a percent.
pub fn percent_of(nanos: i64, percent: f64) -> i64 {
    let ppm = (percent * 1_000_000.0).round() as i128; // parts per 100·1e6
    let scaled = i128::from(nanos) * ppm;
    let denom: i128 = 100 * 1_000_000;
    // Round half away from zero.
    let q = (scaled + denom / 2 * scaled.signum()) / denom;
    i64::try_from(q).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_exact_in_nanos() {
        let price = Price {
            input_per_mtok: 2.5,
            output_per_mtok: 10.0,
            cached_input_per_mtok: Some(1.25),
            ..Price::default()
        };
        let usage = Usage {
            input_tokens: 1_000,
            output_tokens: 500,
            cached_input_tokens: 200,
            ..Usage::default()
        };
        // 800 × 2.5 + 200 × 1.25 + 500 × 10 = 2000 + 250 + 5000 = 7250 µ$ = 7 250 000 n$.
        assert_eq!(cost_nanos(&price, &usage), 7_250_000);
        // A tiny embedding is not rounded away: 8 tokens × $0.02/Mtok = 160 n$.
        let embed = Price {
            input_per_mtok: 0.02,
            ..Price::default()
        };
        let u = Usage {
            input_tokens: 8,
            ..Usage::default()
        };
        assert_eq!(cost_nanos(&embed, &u), 160);
    }

    #[test]
    fn cache_reads_and_writes_are_priced_apart_and_saving_is_exact() {
        // Claude Sonnet's list prices: reads 0.1×, 5-minute writes 1.25×, 1-hour writes 2×.
        let price = Price {
            input_per_mtok: 3.0,
            output_per_mtok: 15.0,
            cached_input_per_mtok: Some(0.3),
            cache_write_per_mtok: Some(3.75),
            cache_write_1h_per_mtok: Some(6.0),
        };
        let usage = Usage {
            input_tokens: 10_000,
            output_tokens: 100,
            cached_input_tokens: 6_000,
            cache_write_tokens: 3_000,
            cache_write_1h_tokens: 1_000,
            reasoning_tokens: 40,
        };
        // 1000 fresh × 3 + 6000 × 0.3 + 2000 × 3.75 + 1000 × 6 + 100 × 15
        // = 3000 + 1800 + 7500 + 6000 + 1500 = 19 800 µ$.
        assert_eq!(cost_nanos(&price, &usage), 19_800_000);
        // Uncached: 10 000 × 3 + 1500 = 31 500 µ$; saved 11 700 µ$.
        assert_eq!(cache_saved_nanos(&price, &usage), 11_700_000);
        // A first turn that only writes costs more than uncached: the saving is negative.
        let write_only = Usage {
            input_tokens: 4_000,
            cache_write_tokens: 4_000,
            ..Usage::default()
        };
        assert_eq!(cache_saved_nanos(&price, &write_only), -3_000_000);
        // Counts beyond the input (a cloud's bad report) never bill a token twice.
        let bad = Usage {
            input_tokens: 100,
            cached_input_tokens: 80,
            cache_write_tokens: 80,
            ..Usage::default()
        };
        // 80 reads × 0.3 + 20 writes × 3.75 = 24 + 75 = 99 µ$.
        assert_eq!(cost_nanos(&price, &bad), 99_000);
    }

    #[test]
    fn percent_rounds_to_the_nano() {
        assert_eq!(percent_of(1_000, 20.0), 200);
        assert_eq!(percent_of(3, 50.0), 2); // 1.5 rounds up
        assert_eq!(percent_of(nanos(1234.56), 12.5), nanos(154.32));
    }
}
