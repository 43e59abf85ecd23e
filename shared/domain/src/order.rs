//! Orders, their line items, and the one table of allowed status transitions.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{CorrelationId, CustomerId, OrderId, Sku};
use crate::money::{Currency, Money};

/// How many units of one SKU a line orders: 1 to [`Quantity::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Quantity(u32);

impl Quantity {
    /// The most units of one SKU a single order may ask for.
    pub const MAX: u32 = 100;

    /// Accepts 1..=[`Quantity::MAX`].
    pub fn new(units: u32) -> Option<Self> {
        (1..=Self::MAX).contains(&units).then_some(Self(units))
    }

    /// The number of units.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Quantity {
    type Error = String;
    fn try_from(units: u32) -> Result<Self, Self::Error> {
        Self::new(units).ok_or_else(|| format!("quantity must be 1..={}", Self::MAX))
    }
}

impl From<Quantity> for u32 {
    fn from(q: Quantity) -> u32 {
        q.0
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// What is ordered.
    pub sku: Sku,
    /// How many.
    pub quantity: Quantity,
    /// Price of one unit, in the order's currency.
    pub unit_price: Money,
}

impl OrderItem {
    /// Price of the whole line; `None` on overflow.
    pub fn line_total(&self) -> Option<Money> {
        self.unit_price.checked_mul(u64::from(self.quantity.get()))
    }
}

/// Where an order is in the saga. See [`OrderStatus::can_become`] for the moves allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Accepted and stored; payment not yet attempted.
    Pending,
    /// Charged; stock not yet reserved.
    Paid,
    /// Charged and stock reserved: the happy end.
    Confirmed,
    /// The charge was declined: an end.
    PaymentFailed,
    /// Charged, then stock was short, so the charge was refunded: an end.
    Cancelled,
}

/// Every allowed status change, written once. The whole pipeline moves orders only through
/// this table (and conditional writes that check the current status against it), so an
/// out-of-order or replayed event can never move an order backwards or skip a step.
pub const TRANSITIONS: &[(OrderStatus, OrderStatus)] = &[
    (OrderStatus::Pending, OrderStatus::Paid),
    (OrderStatus::Pending, OrderStatus::PaymentFailed),
    (OrderStatus::Paid, OrderStatus::Confirmed),
    (OrderStatus::Paid, OrderStatus::Cancelled),
];

impl OrderStatus {
    /// Every status, for exhaustive tests and documentation.
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Pending,
        OrderStatus::Paid,
        OrderStatus::Confirmed,
        OrderStatus::PaymentFailed,
        OrderStatus::Cancelled,
    ];

    /// Whether the saga may move an order from `self` to `next`.
    pub fn can_become(self, next: OrderStatus) -> bool {
        TRANSITIONS.contains(&(self, next))
    }

    /// The statuses an order must be in to move to `next`: what a conditional write checks.
    pub fn predecessors(next: OrderStatus) -> impl Iterator<Item = OrderStatus> {
        TRANSITIONS
            .iter()
            .filter(move |(_, to)| *to == next)
            .map(|(from, _)| *from)
    }

    /// True for the statuses the saga never leaves.
    pub fn is_final(self) -> bool {
        !TRANSITIONS.iter().any(|(from, _)| *from == self)
    }

    /// The stored and serialised name, e.g. `PAYMENT_FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Paid => "PAID",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::PaymentFailed => "PAYMENT_FAILED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    /// Parses the stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A card token from the (simulated) payment provider's client-side SDK. Never logged:
/// its `Debug` is redacted. It is not a field of [`Order`], so no API response carries
/// it, and no event does either: create-order stores it beside the order, on the order's
/// item, and payment reads it from there ([`crate::ports::OrderStore::get_stored`]);
/// the write that moves the order out of PENDING deletes it. It lives as long as it is
/// needed, in one place, rather than for days in outbox rows, queues and DLQs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PaymentToken(String);

impl PaymentToken {
    /// Wraps a token that request validation accepted.
    pub fn new(token: String) -> Self {
        Self(token)
    }

    /// The token, for the payment gateway only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PaymentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PaymentToken(***)")
    }
}

/// A validated request to place an order: what [`crate::validation`] produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// Who orders.
    pub customer_id: CustomerId,
    /// The currency of every price in the order.
    pub currency: Currency,
    /// The lines; 1 to 25, no SKU twice.
    pub items: Vec<OrderItem>,
    /// How the customer pays.
    pub payment_token: PaymentToken,
}

impl NewOrder {
    /// The order total; `None` on overflow (validation rejects such orders first).
    pub fn total(&self) -> Option<Money> {
        self.items
            .iter()
            .try_fold(Money::zero(self.currency), |sum, item| {
                sum.checked_add(item.line_total()?)
            })
    }
}

/// An order as stored and as returned by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The order's id.
    pub order_id: OrderId,
    /// Who ordered.
    pub customer_id: CustomerId,
    /// Where the order is in the saga.
    pub status: OrderStatus,
    /// The lines.
    pub items: Vec<OrderItem>,
    /// Sum of the lines.
    pub total: Money,
    /// The correlation id of the request that placed it, for tracing its whole path.
    pub correlation_id: CorrelationId,
    /// When the order was accepted.
    pub created_at: DateTime<Utc>,
    /// When the status last changed.
    pub updated_at: DateTime<Utc>,
}

impl Order {
    /// A freshly placed order: PENDING, with its total computed from the lines.
    pub fn place(
        new: &NewOrder,
        order_id: OrderId,
        correlation_id: CorrelationId,
        now: DateTime<Utc>,
    ) -> Option<Order> {
        Some(Order {
            order_id,
            customer_id: new.customer_id.clone(),
            status: OrderStatus::Pending,
            items: new.items.clone(),
            total: new.total()?,
            correlation_id,
            created_at: now,
            updated_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_saga_moves_only_forward() {
        use OrderStatus::*;
        assert!(Pending.can_become(Paid));
        assert!(Paid.can_become(Confirmed));
        assert!(Paid.can_become(Cancelled));
        assert!(Pending.can_become(PaymentFailed));
        // No skipping, no going back, no leaving a final state.
        assert!(!Pending.can_become(Confirmed));
        assert!(!Paid.can_become(Pending));
        assert!(!Cancelled.can_become(Confirmed));
        for status in OrderStatus::ALL {
            assert!(!status.can_become(status), "{status} -> itself");
        }
    }

    #[test]
    fn final_states_are_the_ends_of_the_saga() {
        let finals: Vec<_> = OrderStatus::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(
            finals,
            [
                OrderStatus::Confirmed,
                OrderStatus::PaymentFailed,
                OrderStatus::Cancelled
            ]
        );
        let into_paid: Vec<_> = OrderStatus::predecessors(OrderStatus::Paid).collect();
        assert_eq!(into_paid, [OrderStatus::Pending]);
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{}\"", status.as_str())
            );
        }
    }

    #[test]
    fn payment_tokens_never_show_in_debug_output() {
        let token = PaymentToken::new("tok_secret_value".into());
        assert!(!format!("{token:?}").contains("secret"));
    }
}
