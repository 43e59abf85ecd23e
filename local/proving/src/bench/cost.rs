//! What a million orders would cost on AWS, from what the bench measured.
//!
//! Every input is a measurement of the throughput run (its mix of happy, declined, sold
//! out and duplicate orders): invocations and their mean durations, AWS requests by
//! operation, DynamoDB capacity units as the emulator sized them, SQS messages delivered
//! and bytes logged, all per order. The prices are AWS's public on-demand list prices for
//! us-east-1; update [`PRICES`] and [`PRICES_AS_OF`] when they change.

use super::throughput::Throughput;

/// When the prices below were copied from AWS's pricing pages.
pub const PRICES_AS_OF: &str =
    "2025 list prices (us-east-1), copied 2026-11-26 from the AWS pricing pages as last published";

/// One price.
#[derive(Debug, Clone, Copy)]
pub struct Price {
    /// What is priced.
    pub item: &'static str,
    /// Per what.
    pub unit: &'static str,
    /// In US dollars.
    pub usd: f64,
}

/// Lambda (arm64) compute, per GB-second.
pub const LAMBDA_GB_SECOND: Price = Price {
    item: "Lambda compute, arm64",
    unit: "GB-second",
    usd: 0.000_013_333_4,
};
/// Lambda requests.
pub const LAMBDA_REQUEST: Price = Price {
    item: "Lambda requests",
    unit: "million requests",
    usd: 0.20,
};
/// API Gateway REST API requests (first 333 million a month).
pub const API_REQUEST: Price = Price {
    item: "API Gateway REST API",
    unit: "million requests",
    usd: 3.50,
};
/// SNS publishes (deliveries to SQS are free).
pub const SNS_PUBLISH: Price = Price {
    item: "SNS standard topic publishes",
    unit: "million requests",
    usd: 0.50,
};
/// SQS standard queue requests.
pub const SQS_REQUEST: Price = Price {
    item: "SQS standard requests",
    unit: "million requests",
    usd: 0.40,
};
/// DynamoDB on-demand writes.
pub const DYNAMODB_WRITE: Price = Price {
    item: "DynamoDB on-demand write request units",
    unit: "million WRU",
    usd: 0.625,
};
/// DynamoDB on-demand reads.
pub const DYNAMODB_READ: Price = Price {
    item: "DynamoDB on-demand read request units",
    unit: "million RRU",
    usd: 0.125,
};
/// CloudWatch Logs ingestion (standard class).
pub const LOG_INGESTION: Price = Price {
    item: "CloudWatch Logs ingestion",
    unit: "GB",
    usd: 0.50,
};
/// X-Ray traces recorded.
pub const XRAY_TRACE: Price = Price {
    item: "X-Ray traces recorded",
    unit: "million traces",
    usd: 5.00,
};

/// Every price the model uses.
pub const PRICES: &[Price] = &[
    LAMBDA_GB_SECOND,
    LAMBDA_REQUEST,
    API_REQUEST,
    SNS_PUBLISH,
    SQS_REQUEST,
    DYNAMODB_WRITE,
    DYNAMODB_READ,
    LOG_INGESTION,
    XRAY_TRACE,
];

/// X-Ray's default sampling keeps the first request each second and 5 % of the rest: at
/// a million orders, about 5 % are traced.
const TRACED_SHARE: f64 = 0.05;

/// One line of the estimate.
#[derive(Debug, Clone)]
pub struct CostLine {
    /// The service.
    pub item: &'static str,
    /// How much of it one order uses, in words.
    pub quantity: String,
    /// US dollars per million orders.
    pub usd_per_million_orders: f64,
}

/// The estimate, per million orders, line by line.
pub fn per_million_orders(run: &Throughput, memory_mb: &dyn Fn(&str) -> u64) -> Vec<CostLine> {
    let orders = run.orders.max(1) as f64;
    let ops = |service_op: &dyn Fn(&str) -> bool| -> f64 {
        run.requests
            .iter()
            .filter(|(caller, _)| run.functions.contains_key(*caller))
            .flat_map(|(_, ops)| ops.iter())
            .filter(|(op, _)| service_op(op))
            .map(|(_, n)| *n as f64)
            .sum::<f64>()
            / orders
    };
    let invocations: f64 = run
        .functions
        .values()
        .map(|f| f.invocations as f64)
        .sum::<f64>()
        / orders;
    let gb_seconds: f64 = run
        .functions
        .iter()
        .map(|(name, f)| {
            // Lambda bills each invocation's duration rounded up to the millisecond.
            f.invocations as f64 * f.mean_ms.ceil() / 1000.0 * memory_mb(name) as f64 / 1024.0
        })
        .sum::<f64>()
        / orders;
    // SNS bills a request per 64 KB chunk, so a PublishBatch of small events is one.
    let publishes = ops(&|op| op == "sns.Publish" || op == "sns.PublishBatch");
    let delivered: f64 = run
        .functions
        .values()
        .map(|f| f.delivered as f64)
        .sum::<f64>()
        / orders;
    let consumer_invocations: f64 = run
        .functions
        .values()
        .filter(|f| f.delivered > 0)
        .map(|f| f.invocations as f64)
        .sum::<f64>()
        / orders;
    // Each message is one request arriving (SNS's delivery), and each batch one receive
    // and one delete by Lambda's pollers.
    let sqs = delivered + 2.0 * consumer_invocations + ops(&|op| op.starts_with("sqs."));
    let (read_units, write_units) = (run.read_units / orders, run.write_units / orders);
    let log_gb = run
        .functions
        .values()
        .map(|f| f.log_bytes as f64)
        .sum::<f64>()
        / orders
        / 1_073_741_824.0;
    let million = 1_000_000.0;
    vec![
        CostLine {
            item: API_REQUEST.item,
            quantity: "1 request".into(),
            usd_per_million_orders: API_REQUEST.usd,
        },
        CostLine {
            item: LAMBDA_REQUEST.item,
            quantity: format!("{invocations:.2} invocations"),
            usd_per_million_orders: invocations * LAMBDA_REQUEST.usd,
        },
        CostLine {
            item: LAMBDA_GB_SECOND.item,
            quantity: format!("{gb_seconds:.4} GB-s"),
            usd_per_million_orders: gb_seconds * million * LAMBDA_GB_SECOND.usd,
        },
        CostLine {
            item: SNS_PUBLISH.item,
            quantity: format!("{publishes:.2} publish requests"),
            usd_per_million_orders: publishes * SNS_PUBLISH.usd,
        },
        CostLine {
            item: SQS_REQUEST.item,
            quantity: format!(
                "{sqs:.2} requests ({delivered:.2} messages in, a receive and a delete per batch)"
            ),
            usd_per_million_orders: sqs * SQS_REQUEST.usd,
        },
        CostLine {
            item: DYNAMODB_WRITE.item,
            quantity: format!("{write_units:.1} WRU"),
            usd_per_million_orders: write_units * DYNAMODB_WRITE.usd,
        },
        CostLine {
            item: DYNAMODB_READ.item,
            quantity: format!("{read_units:.1} RRU"),
            usd_per_million_orders: read_units * DYNAMODB_READ.usd,
        },
        CostLine {
            item: LOG_INGESTION.item,
            quantity: format!("{:.1} KB of logs", log_gb * 1_048_576.0),
            usd_per_million_orders: log_gb * million * LOG_INGESTION.usd,
        },
        CostLine {
            item: XRAY_TRACE.item,
            quantity: format!("{:.0} % of orders traced", TRACED_SHARE * 100.0),
            usd_per_million_orders: TRACED_SHARE * XRAY_TRACE.usd,
        },
    ]
}
