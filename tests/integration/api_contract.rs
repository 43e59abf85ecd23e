//! `docs/openapi.yaml` is the one API contract: API Gateway is built from it, and these
//! tests hold the template, the sample events and the functions to it. (Every answer
//! any test gets from the API is also checked against it, in `Harness::send`.)

use std::collections::BTreeSet;

use emulator::template::{FUNCTION, Template};
use integration_tests::contract::Contract;
use integration_tests::{Harness, new_key, order_body};
use serde_json::{Value, json};

const REQUEST_SCHEMA: &str = "#/components/schemas/CreateOrderRequest";

/// (METHOD, path, function) for every route.
type Routes = BTreeSet<(String, String, String)>;

fn template() -> Template {
    Template::load(&Template::workspace_template()).expect("template loads")
}

/// The routes template.yaml's functions declare as `Api` events on the orders API.
fn template_routes(template: &Template) -> Routes {
    let mut routes = Routes::new();
    for (function, resource) in template.of_kind(FUNCTION) {
        for event in resource.properties["Events"]
            .as_object()
            .into_iter()
            .flatten()
        {
            let event = event.1;
            if event["Type"] != "Api" {
                continue;
            }
            let properties = &event["Properties"];
            assert_eq!(properties["RestApiId"]["Ref"], "OrdersApi", "{function}");
            routes.insert((
                properties["Method"].as_str().unwrap().to_uppercase(),
                properties["Path"].as_str().unwrap().to_owned(),
                function.to_owned(),
            ));
        }
    }
    routes
}

/// The routes the contract defines, with the function its Lambda integration invokes.
fn contract_routes(contract: &Contract) -> Routes {
    contract
        .operations()
        .into_iter()
        .map(|op| {
            let integration = &op.definition["x-amazon-apigateway-integration"];
            assert_eq!(
                integration["type"], "aws_proxy",
                "{} {}",
                op.method, op.path
            );
            let uri = integration["uri"]["Fn::Sub"].as_str().unwrap();
            // `.../functions/${CreateOrderFunctionAliaslive}/invocations`: the live alias
            // that canary deployments shift, never `$LATEST`.
            let target = uri
                .split("/functions/${")
                .nth(1)
                .and_then(|rest| rest.split("Aliaslive}").next())
                .unwrap_or_else(|| panic!("{uri} invokes a function's live alias"));
            (op.method.clone(), op.path.to_owned(), target.to_owned())
        })
        .collect()
}

#[test]
fn the_template_builds_the_api_from_the_contract() {
    let template = template();
    let api = &template.resources["OrdersApi"].properties;
    let include = &api["DefinitionBody"]["Fn::Transform"];
    assert_eq!(include["Name"], "AWS::Include");
    let location = include["Parameters"]["Location"].as_str().unwrap();
    let root = Template::workspace_template();
    assert_eq!(
        root.parent()
            .unwrap()
            .join(location)
            .canonicalize()
            .unwrap(),
        Contract::path().canonicalize().unwrap(),
        "OrdersApi's DefinitionBody is docs/openapi.yaml"
    );
    assert!(
        api.get("Auth").is_none(),
        "authentication is defined in the contract, not beside it"
    );
}

#[test]
fn every_route_is_in_the_contract_and_the_template_alike() {
    let from_template = template_routes(&template());
    let from_contract = contract_routes(Contract::get());
    assert!(!from_contract.is_empty());
    assert_eq!(
        from_contract, from_template,
        "docs/openapi.yaml's routes and integrations equal template.yaml's Api events"
    );
}

#[test]
fn no_route_is_anonymous_and_every_request_is_validated_at_the_edge() {
    let contract = Contract::get();
    let document = contract.document();
    assert_eq!(document["x-amazon-apigateway-request-validator"], "all");
    let validator = &document["x-amazon-apigateway-request-validators"]["all"];
    assert_eq!(validator["validateRequestBody"], true);
    assert_eq!(validator["validateRequestParameters"], true);
    assert_eq!(
        document["components"]["securitySchemes"]["sigv4"]["x-amazon-apigateway-authtype"],
        "awsSigv4"
    );
    for op in contract.operations() {
        assert_eq!(
            op.definition["security"],
            json!([{"sigv4": []}]),
            "{} {} requires SigV4",
            op.method,
            op.path
        );
        assert!(
            op.definition["x-amazon-apigateway-request-validator"].is_null(),
            "{} {} does not opt out of validation",
            op.method,
            op.path
        );
    }
    for (kind, response) in document["x-amazon-apigateway-gateway-responses"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            response["responseParameters"]["gatewayresponse.header.Content-Type"],
            "'application/problem+json'",
            "API Gateway's own {kind} answer is a problem too"
        );
    }
}

fn sample_body() -> Value {
    let text = std::fs::read_to_string(
        Template::workspace_template()
            .parent()
            .unwrap()
            .join("events/create-order.json"),
    )
    .unwrap();
    let event: Value = serde_json::from_str(&text).unwrap();
    serde_json::from_str(event["body"].as_str().unwrap()).unwrap()
}

/// Breaks one thing in a valid body.
fn broken(edit: impl FnOnce(&mut Value)) -> Value {
    let mut body = order_body();
    edit(&mut body);
    body
}

#[tokio::test]
async fn the_edge_and_the_function_refuse_the_same_malformed_orders() {
    let contract = Contract::get();
    for valid in [sample_body(), order_body()] {
        assert_eq!(
            contract.violations(REQUEST_SCHEMA, &valid),
            Vec::<String>::new()
        );
    }
    let malformed = [
        broken(|b| b["items"][0]["quantity"] = json!(0)),
        broken(|b| b["items"][0]["quantity"] = json!(101)),
        broken(|b| b["items"][0]["unit_price_minor"] = json!(12.5)),
        broken(|b| b["items"][0]["sku"] = json!("red mug")),
        broken(|b| b["currency"] = json!("JPY")),
        broken(|b| b["customer_id"] = json!("customer-1")),
        broken(|b| b["items"] = json!([])),
        broken(|b| b["payment_token"] = json!("")),
        broken(|b| b["discount"] = json!(10)),
        broken(|b| {
            b.as_object_mut().unwrap().remove("items");
        }),
        broken(|b| {
            let line = b["items"][0].clone();
            b["items"] = Value::Array(
                (0..26)
                    .map(|i| {
                        let mut line = line.clone();
                        line["sku"] = json!(format!("SKU-{i:03}"));
                        line
                    })
                    .collect(),
            );
        }),
    ];
    let h = Harness::start().await;
    for body in &malformed {
        assert!(
            !contract.violations(REQUEST_SCHEMA, body).is_empty(),
            "the edge refuses {body}"
        );
        let answer = h.post_order(body, Some(&new_key())).await;
        assert_eq!(answer.status, 400, "the function refuses {body} too");
    }
    // Rules across fields are beyond a schema: the edge lets them through and the
    // function refuses them, naming the rule.
    let duplicate_skus = broken(|b| {
        let line = b["items"][0].clone();
        b["items"] = json!([line.clone(), line]);
    });
    assert!(
        contract
            .violations(REQUEST_SCHEMA, &duplicate_skus)
            .is_empty()
    );
    let answer = h.post_order(&duplicate_skus, Some(&new_key())).await;
    let problem = answer.assert_problem(400, "validation-failed");
    assert_eq!(problem["errors"][0]["rule"], "unique_skus", "{problem}");
}

/// Every gateway response the contract declares renders, as API Gateway fills it in, a
/// problem that matches the contract's own Problem schema: a typo in a template would
/// otherwise reach clients as broken JSON, and only on AWS. The local API renders them
/// with the same code (`lambda_host::edge`).
#[test]
fn every_gateway_response_renders_a_documented_problem() {
    let contract = Contract::get();
    let edge = lambda_host::edge::Edge::from_definition(contract.document()).unwrap();
    let kinds = edge.gateway_response_types();
    assert!(kinds.len() >= 5, "{kinds:?}");
    for kind in kinds {
        let answer = edge.gateway_answer(
            &kind,
            "a message with \"quotes\"",
            "[a \"validation\" error]",
            "request-1",
        );
        let problem: Value = serde_json::from_str(&answer.body)
            .unwrap_or_else(|e| panic!("{kind} renders no JSON ({e}): {}", answer.body));
        assert_eq!(
            contract.violations("#/components/schemas/Problem", &problem),
            Vec::<String>::new(),
            "{kind}: {problem}"
        );
        assert_eq!(problem["correlation_id"], "request-1", "{kind}");
    }
}
