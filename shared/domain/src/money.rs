//! Money as integer minor units plus a currency.
//!
//! Floats cannot represent 0.10 exactly and silently lose cents when summed; integers in
//! the currency's minor unit (cents, pence) cannot. Every amount carries its currency so
//! euros are never added to dollars.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The currencies the shop accepts (ISO 4217). The request validator rejects anything
/// else, so an unsupported currency never reaches the domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Currency {
    /// Euro; 2 minor-unit digits.
    EUR,
    /// US dollar; 2 minor-unit digits.
    USD,
    /// Pound sterling; 2 minor-unit digits.
    GBP,
}

impl Currency {
    /// Every accepted currency, in the order error messages list them.
    pub const ALL: [Currency; 3] = [Currency::EUR, Currency::USD, Currency::GBP];

    /// Parses an ISO 4217 code from the allow-list.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The ISO 4217 code.
    pub fn code(self) -> &'static str {
        match self {
            Currency::EUR => "EUR",
            Currency::USD => "USD",
            Currency::GBP => "GBP",
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An amount of money in minor units of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Amount in the currency's minor unit (e.g. cents). Never negative: refunds are
    /// separate events, not negative charges.
    pub amount_minor: u64,
    /// The currency the amount is in.
    pub currency: Currency,
}

impl Money {
    /// Builds an amount.
    pub fn new(amount_minor: u64, currency: Currency) -> Self {
        Self {
            amount_minor,
            currency,
        }
    }

    /// Zero in a currency: the start of a sum.
    pub fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    /// Adds two amounts; `None` on overflow or when the currencies differ.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        Some(Money::new(
            self.amount_minor.checked_add(other.amount_minor)?,
            self.currency,
        ))
    }

    /// Multiplies by a count (a line's quantity); `None` on overflow.
    pub fn checked_mul(self, count: u64) -> Option<Money> {
        Some(Money::new(
            self.amount_minor.checked_mul(count)?,
            self.currency,
        ))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:02} {}",
            self.amount_minor / 100,
            self.amount_minor % 100,
            self.currency
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_in_one_currency_only() {
        let a = Money::new(1999, Currency::EUR);
        assert_eq!(
            a.checked_add(a).map(|m| m.amount_minor),
            Some(3998),
            "same currency adds"
        );
        assert_eq!(a.checked_add(Money::new(1, Currency::USD)), None);
        assert_eq!(Money::new(u64::MAX, Currency::EUR).checked_mul(2), None);
    }

    #[test]
    fn displays_major_and_minor_units() {
        assert_eq!(Money::new(1205, Currency::GBP).to_string(), "12.05 GBP");
    }

    #[test]
    fn only_allow_listed_currencies_parse() {
        assert_eq!(Currency::parse("USD"), Some(Currency::USD));
        assert_eq!(Currency::parse("JPY"), None);
        assert_eq!(Currency::parse("usd"), None);
    }
}
