//! Money as integer minor units with an ISO 4217 code: checked, never floating point,
//! never overflowing (every sum is checked; an overflow is refused, not wrapped).

use std::collections::BTreeMap;

use caseline_proto::v1::Money;

/// Active ISO 4217 alphabetic codes of currencies (funds, precious metals and testing
/// codes left out).
const ISO_4217: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND \
BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP \
ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK \
JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK \
MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG \
QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT \
TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR \
ZMW ZWG";

/// True if `code` is an active ISO 4217 currency code (three capital letters).
pub fn is_currency(code: &str) -> bool {
    code.len() == 3
        && code.bytes().all(|b| b.is_ascii_uppercase())
        && ISO_4217.split_ascii_whitespace().any(|c| c == code)
}

/// What is wrong with an amount, as (field suffix, reason), if anything: a known
/// currency and a positive number of minor units.
pub fn fault(money: Option<&Money>) -> Option<(&'static str, &'static str)> {
    let Some(m) = money else {
        return Some(("", "is required"));
    };
    if !is_currency(&m.currency) {
        return Some((
            ".currency",
            "must be an ISO 4217 currency code such as EUR or KES",
        ));
    }
    if m.minor_units <= 0 {
        return Some((".minor_units", "must be a positive number of minor units"));
    }
    if m.minor_units > MAX_MINOR_UNITS {
        return Some((".minor_units", "must be at most 10^15 minor units"));
    }
    None
}

/// The largest amount Caseline records (10^15 minor units: ten trillion in a currency
/// of two decimals), so that the totals of any case, summed over a million claims,
/// still fit.
pub const MAX_MINOR_UNITS: i64 = 1_000_000_000_000_000;

/// Totals of one currency, in minor units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub claimed: i64,
    pub awarded: i64,
    pub paid: i64,
}

impl Totals {
    /// Awarded but not paid.
    pub fn outstanding(&self) -> Option<i64> {
        self.awarded.checked_sub(self.paid)
    }

    /// The sum of two totals, `None` on overflow.
    pub fn plus(self, other: Totals) -> Option<Totals> {
        Some(Totals {
            claimed: self.claimed.checked_add(other.claimed)?,
            awarded: self.awarded.checked_add(other.awarded)?,
            paid: self.paid.checked_add(other.paid)?,
        })
    }
}

/// Totals per currency.
pub type ByCurrency = BTreeMap<String, Totals>;

/// Adds `totals` of `currency` to `into`; `None` on overflow.
pub fn add(into: &mut ByCurrency, currency: &str, totals: Totals) -> Option<()> {
    let entry = into.entry(currency.to_owned()).or_default();
    *entry = entry.plus(totals)?;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies() {
        for code in ["EUR", "KES", "USD", "GBP", "JPY", "XOF"] {
            assert!(is_currency(code), "{code}");
        }
        for code in ["", "eur", "EURO", "XXX", "XAU", "ABC", "E1R", "€"] {
            assert!(!is_currency(code), "{code}");
        }
    }

    #[test]
    fn amounts() {
        let m = |minor_units, currency: &str| Money {
            minor_units,
            currency: currency.into(),
        };
        assert_eq!(fault(Some(&m(1, "EUR"))), None);
        assert_eq!(fault(Some(&m(0, "EUR"))).map(|f| f.0), Some(".minor_units"));
        assert_eq!(
            fault(Some(&m(-5, "EUR"))).map(|f| f.0),
            Some(".minor_units")
        );
        assert_eq!(fault(Some(&m(5, "ZZZ"))).map(|f| f.0), Some(".currency"));
        assert_eq!(fault(None).map(|f| f.0), Some(""));
        assert_eq!(fault(Some(&m(MAX_MINOR_UNITS, "EUR"))), None);
        assert_eq!(
            fault(Some(&m(MAX_MINOR_UNITS + 1, "EUR"))).map(|f| f.0),
            Some(".minor_units")
        );
    }

    #[test]
    fn totals_never_overflow_silently() {
        let big = Totals {
            claimed: i64::MAX,
            awarded: i64::MAX,
            paid: 0,
        };
        assert_eq!(
            big.plus(Totals {
                claimed: 1,
                ..Totals::default()
            }),
            None
        );
        let mut by = ByCurrency::new();
        assert_eq!(add(&mut by, "EUR", big), Some(()));
        assert_eq!(add(&mut by, "EUR", big), None);
        assert_eq!(
            Totals {
                claimed: 0,
                awarded: 10,
                paid: 4
            }
            .outstanding(),
            Some(6)
        );
    }
}
