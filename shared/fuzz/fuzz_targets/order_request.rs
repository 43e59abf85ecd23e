//! Any bytes as a `POST /orders` body: parsing and validation must answer with an error
//! naming the field, never panic (a panic would be a 502 instead of a problem+json 400).
#![no_main]

use libfuzzer_sys::fuzz_target;
use domain::validation::CreateOrderRequest;

fuzz_target!(|data: &[u8]| {
    // The API hands the handler text; bytes that are not UTF-8 never reach the parser.
    if let Ok(body) = std::str::from_utf8(data)
        && let Ok(request) = CreateOrderRequest::from_json(body)
    {
        let _ = request.into_new_order();
    }
});
