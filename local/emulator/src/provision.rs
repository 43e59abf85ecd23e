//! Creating the template's resources on the emulator, and describing the functions'
//! environments and event source mappings in local terms.
//!
//! Resources are created in dependency order, found the simple way: a resource whose
//! properties reference something not created yet waits for the next pass. Provisioning
//! is idempotent, so the local host can start against an emulator that already has them.

use std::collections::{BTreeMap, BTreeSet};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Map, Value};

use crate::filter::{Filter, FilterError};
use crate::intrinsics::{Names, ResolveError, scalar_text};
use crate::template::{LAMBDA_FUNCTION, Resource, Template};
use crate::{ACCOUNT_ID, REGION};

/// Provisioning failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// A property references something that never gets created.
    #[error("resource {resource}: {source}")]
    Resolve {
        /// The logical id.
        resource: String,
        /// What could not be resolved.
        source: ResolveError,
    },
    /// A property has a shape this crate does not understand.
    #[error("resource {resource}: {message}")]
    Property {
        /// The logical id.
        resource: String,
        /// What is wrong.
        message: String,
    },
    /// The emulator refused a call.
    #[error("resource {resource}: {operation} failed: {message}")]
    Aws {
        /// The logical id.
        resource: String,
        /// The API call.
        operation: &'static str,
        /// The SDK's error.
        message: String,
    },
    /// The stack has no resource of that name and kind.
    #[error("no {kind} named {id} in the template")]
    Missing {
        /// What was asked for.
        kind: &'static str,
        /// The logical id.
        id: String,
    },
}

fn aws_error<E: std::fmt::Debug>(resource: &str, operation: &'static str, e: E) -> ProvisionError {
    ProvisionError::Aws {
        resource: resource.to_owned(),
        operation,
        message: format!("{e:?}"),
    }
}

/// The resource types provisioned on the emulator.
const PROVISIONED: &[&str] = &[
    "AWS::DynamoDB::Table",
    "AWS::SecretsManager::Secret",
    "AWS::SNS::Topic",
    "AWS::SQS::Queue",
    "AWS::SNS::Subscription",
];

/// The template's resources as they exist locally.
#[derive(Debug, Clone)]
pub struct Stack {
    template: Template,
    names: Names,
}

/// A DynamoDB stream event source mapping (SAM's translation of a function event of
/// `Type: DynamoDB`).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamMapping {
    /// The function's logical id.
    pub function: String,
    /// The stream read.
    pub stream_arn: String,
    /// `TRIM_HORIZON` or `LATEST`.
    pub starting_position: String,
    /// Most records per invocation.
    pub batch_size: usize,
    /// How long to gather records before invoking, in seconds.
    pub batching_window_seconds: u64,
    /// Retries of a failing batch before it goes to the failure destination; `None` means
    /// until the records expire (Lambda's -1).
    pub maximum_retry_attempts: Option<u32>,
    /// Split a failing batch in two to isolate the bad record.
    pub bisect_on_error: bool,
    /// The function reports failed records itself.
    pub report_batch_item_failures: bool,
    /// `FilterCriteria` patterns, parsed.
    pub filters: Vec<Filter>,
    /// SQS queue URL of the on-failure destination.
    pub on_failure_queue_url: Option<String>,
}

/// An SQS event source mapping (SAM's translation of a function event of `Type: SQS`).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueMapping {
    /// The function's logical id.
    pub function: String,
    /// The queue polled.
    pub queue_url: String,
    /// The queue's ARN, as records name it.
    pub queue_arn: String,
    /// Most messages per invocation.
    pub batch_size: usize,
    /// How long to gather messages before invoking, in seconds.
    pub batching_window_seconds: u64,
    /// The function reports failed messages itself.
    pub report_batch_item_failures: bool,
    /// Most concurrent invocations for this mapping.
    pub maximum_concurrency: Option<usize>,
    /// `FilterCriteria` patterns, parsed: a message that matches none is deleted without
    /// an invocation, as Lambda does.
    pub filters: Vec<Filter>,
}

/// Concurrent batches of an SQS mapping without `MaximumConcurrency`. Lambda starts
/// five and adds more while the backlog grows; locally the start is also the ceiling,
/// which keeps a laptop responsive and still lets batches overlap as they do on AWS.
pub const POLLERS_WITHOUT_MAXIMUM: usize = 5;

impl QueueMapping {
    /// How many batches the host delivers at once: the template's `MaximumConcurrency`,
    /// or what Lambda starts with.
    pub fn pollers(&self) -> usize {
        self.maximum_concurrency.unwrap_or(POLLERS_WITHOUT_MAXIMUM)
    }
}

/// A route of a REST API's definition: a method and path template whose Lambda proxy
/// integration invokes a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRoute {
    /// The function's logical id.
    pub function: String,
    /// The HTTP method, upper case (`ANY` for all).
    pub method: String,
    /// The path template, e.g. `/orders/{id}`.
    pub path: String,
    /// The function lets API Gateway invoke it (an `AWS::Lambda::Permission` for
    /// `apigateway.amazonaws.com`, which SAM makes from the function's Api event).
    /// Without one, API Gateway answers every request on the route with a 500.
    pub permitted: bool,
}

/// Creates every table, topic, queue and subscription of `template` on the emulator.
pub async fn provision(config: &SdkConfig, template: &Template) -> Result<Stack, ProvisionError> {
    let mut names = Names {
        conditions: template.conditions.clone(),
        ..Names::default()
    };
    for (name, default) in &template.parameters {
        names.set_ref(name, default.clone());
    }
    // Things that exist without provisioning. A function's name is its logical id; an
    // alias or version is named by its function's ARN and a qualifier, as Lambda names
    // them, so the event source mappings and the API's integrations that SAM points at
    // the `live` alias lead back to the function.
    for (id, _) in template.of_kind(LAMBDA_FUNCTION) {
        names.set_ref(id, id);
        names.set_attribute(id, "Arn", function_arn(id));
    }
    for (kind, qualifier) in [
        ("AWS::Lambda::Version", None),
        ("AWS::Lambda::Alias", Some("Name")),
    ] {
        for (id, resource) in template.of_kind(kind) {
            let function = names
                .resolve(
                    resource
                        .properties
                        .get("FunctionName")
                        .unwrap_or(&Value::Null),
                )
                .map_err(|source| ProvisionError::Resolve {
                    resource: id.to_owned(),
                    source,
                })?;
            let qualifier = qualifier
                .and_then(|q| resource.properties.get(q))
                .map_or("1".to_owned(), scalar_text);
            let arn = format!(
                "{}:{qualifier}",
                function_arn(function_named(&scalar_text(&function)))
            );
            names.set_ref(id, arn.as_str());
            if kind == "AWS::Lambda::Version" {
                // A version's `Fn::GetAtt Version`, which SAM's alias points at.
                names.set_attribute(id, "Version", "1");
            }
        }
    }
    // Resources with no local counterpart (roles, log groups, alarms, the API) still
    // have a name: their logical id, so references to them resolve.
    for (id, resource) in &template.resources {
        if !names.refs.contains_key(id) && !PROVISIONED.contains(&resource.kind.as_str()) {
            names.set_ref(id, id.as_str());
        }
    }

    let clients = Clients {
        dynamodb: aws_sdk_dynamodb::Client::new(config),
        secrets: aws_sdk_secretsmanager::Client::new(config),
        sns: aws_sdk_sns::Client::new(config),
        sqs: aws_sdk_sqs::Client::new(config),
    };
    let mut pending: BTreeSet<&str> = template
        .resources
        .iter()
        .filter(|(_, r)| PROVISIONED.contains(&r.kind.as_str()))
        .map(|(id, _)| id.as_str())
        .collect();
    while !pending.is_empty() {
        let mut progressed = false;
        let mut last_error = None;
        for id in pending.clone() {
            let resource = &template.resources[id];
            if let Some(condition) = &resource.condition {
                let holds =
                    names
                        .condition(condition)
                        .map_err(|source| ProvisionError::Resolve {
                            resource: id.to_owned(),
                            source,
                        })?;
                if !holds {
                    pending.remove(id);
                    progressed = true;
                    continue;
                }
            }
            let properties = match resolved_properties(&names, resource) {
                Ok(properties) => properties,
                Err(source) => {
                    last_error = Some(ProvisionError::Resolve {
                        resource: id.to_owned(),
                        source,
                    });
                    continue;
                }
            };
            clients
                .create(id, resource, &properties, &mut names)
                .await?;
            pending.remove(id);
            progressed = true;
        }
        if !progressed {
            return Err(last_error.unwrap_or_else(|| ProvisionError::Property {
                resource: pending
                    .iter()
                    .next()
                    .copied()
                    .unwrap_or_default()
                    .to_owned(),
                message: "cannot be provisioned".into(),
            }));
        }
    }
    let stack = Stack {
        template: template.clone(),
        names,
    };
    stack.check_mappings()?;
    Ok(stack)
}

/// A resource's `Properties` with every intrinsic resolved.
fn resolved_properties(
    names: &Names,
    resource: &Resource,
) -> Result<Map<String, Value>, ResolveError> {
    match names.resolve(&Value::Object(resource.properties.clone()))? {
        Value::Object(properties) => Ok(properties),
        _ => Ok(Map::new()),
    }
}

/// A function's ARN, locally: its name is its logical id.
fn function_arn(function: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function}")
}

/// The function a `FunctionName` names, as Lambda reads it: a name or an ARN, either
/// possibly qualified by an alias or a version (`Payment:live`).
fn function_named(value: &str) -> &str {
    match value.strip_prefix("arn:") {
        Some(arn) => arn.split(':').nth(5).unwrap_or_default(),
        None => value.split(':').next().unwrap_or_default(),
    }
}

/// The function an API integration's URI invokes
/// (`arn:aws:apigateway:<region>:lambda:path/2015-03-31/functions/<function arn>/invocations`).
fn invoked_function(uri: &str) -> Option<&str> {
    let (_, rest) = uri.split_once(":lambda:path/2015-03-31/functions/")?;
    let function = rest.strip_suffix("/invocations")?;
    Some(function_named(function))
}

/// What an event source mapping reads, told by its `EventSourceArn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Queue,
    Stream,
}

/// One event source mapping, its properties resolved.
struct Mapping {
    function: String,
    source: Source,
    properties: Map<String, Value>,
}

struct Clients {
    dynamodb: aws_sdk_dynamodb::Client,
    secrets: aws_sdk_secretsmanager::Client,
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
}

fn text(properties: &Map<String, Value>, key: &str) -> Option<String> {
    properties.get(key).map(scalar_text)
}

fn list<'a>(properties: &'a Map<String, Value>, key: &str) -> &'a [Value] {
    properties
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A JSON-valued property as the JSON string the AWS APIs expect.
fn json_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn key_schema(resource: &str, items: &[Value]) -> Result<Vec<KeySchemaElement>, ProvisionError> {
    items
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(k.get("AttributeName").map(scalar_text).unwrap_or_default())
                .key_type(KeyType::from(
                    k.get("KeyType")
                        .map(scalar_text)
                        .unwrap_or_default()
                        .as_str(),
                ))
                .build()
                .map_err(|e| ProvisionError::Property {
                    resource: resource.to_owned(),
                    message: e.to_string(),
                })
        })
        .collect()
}

impl Clients {
    async fn create(
        &self,
        id: &str,
        resource: &Resource,
        properties: &Map<String, Value>,
        names: &mut Names,
    ) -> Result<(), ProvisionError> {
        match resource.kind.as_str() {
            "AWS::DynamoDB::Table" => self.create_table(id, properties, names).await,
            "AWS::SNS::Topic" => self.create_topic(id, properties, names).await,
            "AWS::SQS::Queue" => self.create_queue(id, properties, names).await,
            "AWS::SNS::Subscription" => self.subscribe(id, properties, names).await,
            "AWS::SecretsManager::Secret" => self.create_secret(id, properties, names).await,
            _ => Ok(()),
        }
    }

    async fn create_table(
        &self,
        id: &str,
        p: &Map<String, Value>,
        names: &mut Names,
    ) -> Result<(), ProvisionError> {
        let name = text(p, "TableName").unwrap_or_else(|| id.to_owned());
        let mut request = self
            .dynamodb
            .create_table()
            .table_name(&name)
            .billing_mode(BillingMode::from(
                text(p, "BillingMode")
                    .unwrap_or("PAY_PER_REQUEST".into())
                    .as_str(),
            ))
            .set_key_schema(Some(key_schema(id, list(p, "KeySchema"))?));
        for attribute in list(p, "AttributeDefinitions") {
            request = request.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(
                        attribute
                            .get("AttributeName")
                            .map(scalar_text)
                            .unwrap_or_default(),
                    )
                    .attribute_type(ScalarAttributeType::from(
                        attribute
                            .get("AttributeType")
                            .map(scalar_text)
                            .unwrap_or_default()
                            .as_str(),
                    ))
                    .build()
                    .map_err(|e| ProvisionError::Property {
                        resource: id.to_owned(),
                        message: e.to_string(),
                    })?,
            );
        }
        for index in list(p, "GlobalSecondaryIndexes") {
            let projection = index.get("Projection");
            let gsi = GlobalSecondaryIndex::builder()
                .index_name(index.get("IndexName").map(scalar_text).unwrap_or_default())
                .set_key_schema(Some(key_schema(
                    id,
                    index
                        .get("KeySchema")
                        .and_then(Value::as_array)
                        .map(Vec::as_slice)
                        .unwrap_or_default(),
                )?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(
                            projection
                                .and_then(|p| p.get("ProjectionType"))
                                .map(scalar_text)
                                .unwrap_or("ALL".into())
                                .as_str(),
                        ))
                        .set_non_key_attributes(
                            projection
                                .and_then(|p| p.get("NonKeyAttributes"))
                                .and_then(Value::as_array)
                                .map(|a| a.iter().map(scalar_text).collect()),
                        )
                        .build(),
                )
                .build()
                .map_err(|e| ProvisionError::Property {
                    resource: id.to_owned(),
                    message: e.to_string(),
                })?;
            request = request.global_secondary_indexes(gsi);
        }
        if let Some(view) = p
            .get("StreamSpecification")
            .and_then(|s| s.get("StreamViewType"))
        {
            request = request.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(scalar_text(view).as_str()))
                    .build()
                    .map_err(|e| ProvisionError::Property {
                        resource: id.to_owned(),
                        message: e.to_string(),
                    })?,
            );
        }
        match request.send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(aws_error(id, "CreateTable", e)),
        }
        if let Some(ttl) = p.get("TimeToLiveSpecification") {
            let enabled = ttl.get("Enabled").and_then(Value::as_bool).unwrap_or(true);
            let attribute = ttl
                .get("AttributeName")
                .map(scalar_text)
                .unwrap_or_default();
            let spec = TimeToLiveSpecification::builder()
                .enabled(enabled)
                .attribute_name(attribute)
                .build()
                .map_err(|e| ProvisionError::Property {
                    resource: id.to_owned(),
                    message: e.to_string(),
                })?;
            // Already enabled on a second run: fine.
            let _ = self
                .dynamodb
                .update_time_to_live()
                .table_name(&name)
                .time_to_live_specification(spec)
                .send()
                .await;
        }
        let table = self
            .dynamodb
            .describe_table()
            .table_name(&name)
            .send()
            .await
            .map_err(|e| aws_error(id, "DescribeTable", e))?
            .table
            .ok_or_else(|| ProvisionError::Property {
                resource: id.to_owned(),
                message: "DescribeTable returned no table".into(),
            })?;
        names.set_ref(id, name.as_str());
        names.set_attribute(id, "Arn", table.table_arn.unwrap_or_default());
        if let Some(stream) = table.latest_stream_arn {
            names.set_attribute(id, "StreamArn", stream);
        }
        Ok(())
    }

    async fn create_secret(
        &self,
        id: &str,
        p: &Map<String, Value>,
        names: &mut Names,
    ) -> Result<(), ProvisionError> {
        let name = text(p, "Name").unwrap_or_else(|| id.to_owned());
        // Like GenerateSecretString: a fresh random value, different on every emulator.
        let value = match text(p, "SecretString") {
            Some(value) => value,
            None => self
                .secrets
                .get_random_password()
                .password_length(40)
                .exclude_punctuation(true)
                .send()
                .await
                .map_err(|e| aws_error(id, "GetRandomPassword", e))?
                .random_password
                .unwrap_or_default(),
        };
        let created = self
            .secrets
            .create_secret()
            .name(&name)
            .secret_string(value)
            .send()
            .await;
        let arn = match created {
            Ok(output) => output.arn.unwrap_or_default(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_exists_exception()) =>
            {
                self.secrets
                    .describe_secret()
                    .secret_id(&name)
                    .send()
                    .await
                    .map_err(|e| aws_error(id, "DescribeSecret", e))?
                    .arn
                    .unwrap_or_default()
            }
            Err(e) => return Err(aws_error(id, "CreateSecret", e)),
        };
        names.set_ref(id, arn.as_str());
        names.set_attribute(id, "Id", arn);
        Ok(())
    }

    async fn create_topic(
        &self,
        id: &str,
        p: &Map<String, Value>,
        names: &mut Names,
    ) -> Result<(), ProvisionError> {
        let name = text(p, "TopicName").unwrap_or_else(|| id.to_owned());
        let mut request = self.sns.create_topic().name(&name);
        if p.get("FifoTopic").and_then(Value::as_bool) == Some(true) {
            request = request.attributes("FifoTopic", "true");
        }
        let arn = request
            .send()
            .await
            .map_err(|e| aws_error(id, "CreateTopic", e))?
            .topic_arn
            .unwrap_or_default();
        names.set_ref(id, arn.as_str());
        names.set_attribute(id, "TopicArn", arn.as_str());
        names.set_attribute(id, "TopicName", name);
        Ok(())
    }

    async fn create_queue(
        &self,
        id: &str,
        p: &Map<String, Value>,
        names: &mut Names,
    ) -> Result<(), ProvisionError> {
        let name = text(p, "QueueName").unwrap_or_else(|| id.to_owned());
        let mut request = self.sqs.create_queue().queue_name(&name);
        for (property, attribute) in [
            (
                "MessageRetentionPeriod",
                QueueAttributeName::MessageRetentionPeriod,
            ),
            ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
            ("DelaySeconds", QueueAttributeName::DelaySeconds),
            ("MaximumMessageSize", QueueAttributeName::MaximumMessageSize),
            (
                "ReceiveMessageWaitTimeSeconds",
                QueueAttributeName::ReceiveMessageWaitTimeSeconds,
            ),
            ("FifoQueue", QueueAttributeName::FifoQueue),
            (
                "ContentBasedDeduplication",
                QueueAttributeName::ContentBasedDeduplication,
            ),
        ] {
            if let Some(value) = p.get(property) {
                request = request.attributes(attribute, scalar_text(value));
            }
        }
        if let Some(policy) = p.get("RedrivePolicy") {
            request = request.attributes(QueueAttributeName::RedrivePolicy, json_text(policy));
        }
        let url = request
            .send()
            .await
            .map_err(|e| aws_error(id, "CreateQueue", e))?
            .queue_url
            .unwrap_or_default();
        let arn = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| aws_error(id, "GetQueueAttributes", e))?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .unwrap_or_default();
        names.set_ref(id, url.as_str());
        names.set_attribute(id, "QueueUrl", url);
        names.set_attribute(id, "Arn", arn);
        names.set_attribute(id, "QueueName", name);
        Ok(())
    }

    async fn subscribe(
        &self,
        id: &str,
        p: &Map<String, Value>,
        names: &mut Names,
    ) -> Result<(), ProvisionError> {
        let topic = text(p, "TopicArn").unwrap_or_default();
        let protocol = text(p, "Protocol").unwrap_or_default();
        let endpoint = text(p, "Endpoint").unwrap_or_default();
        if protocol == "lambda" {
            // SAM's `SNS` event type. The emulator would accept it and then deliver
            // nothing: stop here instead, naming it.
            return Err(ProvisionError::Property {
                resource: id.to_owned(),
                message: format!(
                    "an SNS subscription of a function ({endpoint}) is not run locally: subscribe an SQS queue and give the function an SQS event, as this project does"
                ),
            });
        }
        // Idempotent: an existing subscription of the same endpoint is kept.
        let existing = self
            .sns
            .list_subscriptions_by_topic()
            .topic_arn(&topic)
            .send()
            .await
            .map_err(|e| aws_error(id, "ListSubscriptionsByTopic", e))?;
        if let Some(found) = existing.subscriptions().iter().find(|s| {
            s.protocol() == Some(protocol.as_str()) && s.endpoint() == Some(endpoint.as_str())
        }) {
            names.set_ref(id, found.subscription_arn().unwrap_or_default());
            return Ok(());
        }
        let mut request = self
            .sns
            .subscribe()
            .topic_arn(&topic)
            .protocol(&protocol)
            .endpoint(&endpoint)
            .return_subscription_arn(true);
        for (property, json) in [
            ("FilterPolicy", true),
            ("FilterPolicyScope", false),
            ("RawMessageDelivery", false),
            ("RedrivePolicy", true),
        ] {
            if let Some(value) = p.get(property) {
                let value = if json {
                    json_text(value)
                } else {
                    scalar_text(value)
                };
                request = request.attributes(property, value);
            }
        }
        let arn = request
            .send()
            .await
            .map_err(|e| aws_error(id, "Subscribe", e))?
            .subscription_arn
            .unwrap_or_default();
        names.set_ref(id, arn);
        Ok(())
    }
}

fn number(value: Option<&Value>) -> Option<i64> {
    value.and_then(|v| v.as_i64().or_else(|| scalar_text(v).parse().ok()))
}

impl Stack {
    fn lookup(
        &self,
        kind: &'static str,
        id: &str,
        attribute: Option<&str>,
    ) -> Result<&str, ProvisionError> {
        let value = match attribute {
            None => self.names.refs.get(id),
            Some(attribute) => self
                .names
                .attributes
                .get(&(id.to_owned(), attribute.to_owned())),
        };
        value
            .and_then(Value::as_str)
            .ok_or_else(|| ProvisionError::Missing {
                kind,
                id: id.to_owned(),
            })
    }

    /// The template this stack was provisioned from.
    pub fn template(&self) -> &Template {
        &self.template
    }

    /// A table's name.
    pub fn table_name(&self, id: &str) -> Result<&str, ProvisionError> {
        self.lookup("table", id, None)
    }

    /// A table's stream ARN.
    pub fn stream_arn(&self, table: &str) -> Result<&str, ProvisionError> {
        self.lookup("table stream", table, Some("StreamArn"))
    }

    /// A topic's ARN.
    pub fn topic_arn(&self, id: &str) -> Result<&str, ProvisionError> {
        self.lookup("topic", id, Some("TopicArn"))
    }

    /// A queue's URL.
    pub fn queue_url(&self, id: &str) -> Result<&str, ProvisionError> {
        self.lookup("queue", id, Some("QueueUrl"))
    }

    /// A queue's ARN.
    pub fn queue_arn(&self, id: &str) -> Result<&str, ProvisionError> {
        self.lookup("queue", id, Some("Arn"))
    }

    /// Every queue, as (logical id, URL).
    pub fn queues(&self) -> Vec<(String, String)> {
        self.template
            .of_kind("AWS::SQS::Queue")
            .filter_map(|(id, _)| Some((id.to_owned(), self.queue_url(id).ok()?.to_owned())))
            .collect()
    }

    /// The logical ids of the template's functions.
    pub fn functions(&self) -> Vec<String> {
        self.template
            .of_kind(LAMBDA_FUNCTION)
            .map(|(id, _)| id.to_owned())
            .collect()
    }

    fn function(&self, id: &str) -> Result<&Resource, ProvisionError> {
        self.template
            .resources
            .get(id)
            .filter(|r| r.kind == LAMBDA_FUNCTION)
            .ok_or_else(|| ProvisionError::Missing {
                kind: "function",
                id: id.to_owned(),
            })
    }

    /// A function's property as SAM translated it (Globals applied), intrinsics
    /// resolved, e.g. `Timeout`.
    pub fn function_property(
        &self,
        id: &str,
        property: &str,
    ) -> Result<Option<Value>, ProvisionError> {
        let function = self.function(id)?;
        function
            .properties
            .get(property)
            .map(|v| self.names.resolve(v))
            .transpose()
            .map_err(|source| ProvisionError::Resolve {
                resource: id.to_owned(),
                source,
            })
    }

    /// A function's environment variables, Globals applied and intrinsics resolved.
    pub fn function_env(&self, id: &str) -> Result<BTreeMap<String, String>, ProvisionError> {
        let variables = self
            .function_property(id, "Environment")?
            .and_then(|e| e.get("Variables").cloned())
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        Ok(variables
            .iter()
            .map(|(k, v)| (k.clone(), scalar_text(v)))
            .collect())
    }

    /// Every event source mapping can run here: it reads a queue or a stream, and its
    /// `FilterCriteria` parse. A pattern this host cannot apply stops provisioning with
    /// the function's name and the operator, rather than filter out every record where
    /// AWS would deliver them; a source it cannot read (Kinesis, Kafka, MQ) stops it too,
    /// rather than leave the function idle.
    fn check_mappings(&self) -> Result<(), ProvisionError> {
        for mapping in self.mappings()? {
            filters(&mapping.properties).map_err(|e| ProvisionError::Property {
                resource: mapping.function,
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// Every enabled event source mapping of the template, properties resolved.
    fn mappings(&self) -> Result<Vec<Mapping>, ProvisionError> {
        let mut out = Vec::new();
        for (id, resource) in self.template.of_kind("AWS::Lambda::EventSourceMapping") {
            let resolve_error = |source| ProvisionError::Resolve {
                resource: id.to_owned(),
                source,
            };
            if let Some(condition) = &resource.condition
                && !self.names.condition(condition).map_err(resolve_error)?
            {
                continue;
            }
            let properties = resolved_properties(&self.names, resource).map_err(resolve_error)?;
            if properties.get("Enabled").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let arn = text(&properties, "EventSourceArn").unwrap_or_default();
            let source = match arn.split(':').nth(2) {
                Some("sqs") => Source::Queue,
                Some("dynamodb") if arn.contains("/stream/") => Source::Stream,
                _ => {
                    return Err(ProvisionError::Property {
                        resource: id.to_owned(),
                        message: format!(
                            "the event source {arn} is not run locally (SQS queues and DynamoDB streams are)"
                        ),
                    });
                }
            };
            let function =
                function_named(&text(&properties, "FunctionName").unwrap_or_default()).to_owned();
            out.push(Mapping {
                function,
                source,
                properties,
            });
        }
        Ok(out)
    }

    /// The mappings of one source, as (function, properties): checked when the stack was
    /// provisioned.
    fn mappings_of(&self, source: Source) -> Vec<(String, Map<String, Value>)> {
        self.mappings()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.source == source)
            .map(|m| (m.function, m.properties))
            .collect()
    }

    fn queue_url_for_arn(&self, arn: &str) -> Option<String> {
        self.template
            .of_kind("AWS::SQS::Queue")
            .find(|(id, _)| self.queue_arn(id).ok() == Some(arn))
            .and_then(|(id, _)| self.queue_url(id).ok().map(str::to_owned))
    }

    /// Every DynamoDB stream event source mapping.
    pub fn stream_mappings(&self) -> Vec<StreamMapping> {
        self.mappings_of(Source::Stream)
            .into_iter()
            .map(|(function, p)| StreamMapping {
                function,
                stream_arn: text(&p, "EventSourceArn").unwrap_or_default(),
                starting_position: text(&p, "StartingPosition").unwrap_or("LATEST".into()),
                batch_size: number(p.get("BatchSize")).unwrap_or(100).max(1) as usize,
                batching_window_seconds: number(p.get("MaximumBatchingWindowInSeconds"))
                    .unwrap_or(0)
                    .max(0) as u64,
                maximum_retry_attempts: number(p.get("MaximumRetryAttempts"))
                    .filter(|n| *n >= 0)
                    .map(|n| n as u32),
                bisect_on_error: p
                    .get("BisectBatchOnFunctionError")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                report_batch_item_failures: reports_failures(&p),
                // Checked when the stack was provisioned.
                filters: filters(&p).unwrap_or_default(),
                on_failure_queue_url: p
                    .get("DestinationConfig")
                    .and_then(|d| d.get("OnFailure"))
                    .and_then(|f| f.get("Destination"))
                    .map(scalar_text)
                    .and_then(|arn| self.queue_url_for_arn(&arn)),
            })
            .collect()
    }

    /// Every SQS event source mapping.
    pub fn queue_mappings(&self) -> Vec<QueueMapping> {
        self.mappings_of(Source::Queue)
            .into_iter()
            .map(|(function, p)| {
                let queue_arn = text(&p, "EventSourceArn").unwrap_or_default();
                QueueMapping {
                    function,
                    queue_url: self.queue_url_for_arn(&queue_arn).unwrap_or_default(),
                    queue_arn,
                    batch_size: number(p.get("BatchSize")).unwrap_or(10).max(1) as usize,
                    batching_window_seconds: number(p.get("MaximumBatchingWindowInSeconds"))
                        .unwrap_or(0)
                        .max(0) as u64,
                    report_batch_item_failures: reports_failures(&p),
                    maximum_concurrency: p
                        .get("ScalingConfig")
                        .and_then(|s| number(s.get("MaximumConcurrency")))
                        .map(|n| n.max(1) as usize),
                    // Checked when the stack was provisioned.
                    filters: filters(&p).unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Every route of the template's REST APIs whose integration invokes a function: read
    /// from each API's definition (`Body`) as SAM leaves it, which is what API Gateway
    /// routes by.
    pub fn api_routes(&self) -> Vec<ApiRoute> {
        let permitted: Vec<String> = self
            .template
            .of_kind("AWS::Lambda::Permission")
            .filter(|(_, p)| {
                p.properties.get("Principal").map(scalar_text).as_deref()
                    == Some("apigateway.amazonaws.com")
            })
            .filter_map(|(_, p)| self.names.resolve(p.properties.get("FunctionName")?).ok())
            .map(|name| function_named(&scalar_text(&name)).to_owned())
            .collect();
        let mut routes = Vec::new();
        for (_, api) in self.template.of_kind("AWS::ApiGateway::RestApi") {
            let paths = api.properties.get("Body").and_then(|b| b.get("paths"));
            for (path, item) in paths.and_then(Value::as_object).into_iter().flatten() {
                for (method, operation) in item.as_object().into_iter().flatten() {
                    let Some(uri) = operation
                        .get("x-amazon-apigateway-integration")
                        .and_then(|i| i.get("uri"))
                        .and_then(|uri| self.names.resolve(uri).ok())
                    else {
                        continue;
                    };
                    let uri = scalar_text(&uri);
                    let Some(function) = invoked_function(&uri) else {
                        continue;
                    };
                    let method = match method.as_str() {
                        "x-amazon-apigateway-any-method" => "ANY".to_owned(),
                        other => other.to_uppercase(),
                    };
                    routes.push(ApiRoute {
                        function: function.to_owned(),
                        method,
                        path: path.clone(),
                        permitted: permitted.iter().any(|p| p == function),
                    });
                }
            }
        }
        routes
    }

    /// The first REST API's definition, as SAM leaves it: the API's edge (request
    /// validation, gateway responses) is read from it.
    pub fn api_definition(&self) -> Option<&Value> {
        self.template
            .of_kind("AWS::ApiGateway::RestApi")
            .find_map(|(_, api)| api.properties.get("Body"))
    }
}

fn reports_failures(p: &Map<String, Value>) -> bool {
    list(p, "FunctionResponseTypes")
        .iter()
        .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
}

fn filters(p: &Map<String, Value>) -> Result<Vec<Filter>, FilterError> {
    p.get("FilterCriteria")
        .and_then(|c| c.get("Filters"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| f.get("Pattern"))
        .map(Filter::parse)
        .collect()
}
