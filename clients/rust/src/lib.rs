//! The Rust client for BrokerGateway.
//!
//! The stubs are generated from `protos/` into [`v1`] by protoc-gen-prost and protoc-gen-tonic (never
//! edit them; run `make generate` at the repository root). This crate adds what every caller would
//! otherwise write by hand, as the Go, TypeScript, Java and Python clients do: a client over plaintext
//! (the sandbox), TLS or mutual TLS with the caller's API key, and the reading of a failed call's
//! `google.rpc.ErrorInfo` and `google.rpc.RetryInfo`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

pub use tonic_types::ErrorInfo;

/// The generated messages and client of `broker_gateway.v1`.
pub mod v1 {
    include!("gen/broker_gateway/v1/broker_gateway.v1.rs");
}

/// The google.rpc.ErrorInfo domain of every BrokerGateway error.
pub const ERROR_DOMAIN: &str = "broker-gateway";

/// A connection's failure: a bad address, an unreadable file, a key that is not valid metadata.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The generated client on a channel whose every call carries the caller's key, if it has one.
pub type Client = v1::broker_gateway_client::BrokerGatewayClient<InterceptedService<Channel, ApiKey>>;

/// A client of the gateway at `address` (`HOST:PORT`) over plaintext, as the plain sandbox serves
/// it. Anything beyond loopback should use [`connect_tls`]. It connects at the first call (call it
/// inside a Tokio runtime).
pub fn connect_insecure(address: &str) -> Result<Client, Error> {
    let channel = Endpoint::from_shared(format!("http://{address}"))?.connect_lazy();
    Ok(Client::new(InterceptedService::new(channel, ApiKey(None))))
}

/// A client of the gateway at `address` (`HOST:PORT`) over TLS ([`tls`] or [`mutual_tls`]), sending
/// `authorization: Bearer <api_key>` with every call when given a key (`broker-gateway
/// new-caller-key` makes one). Only this constructor takes a key, so a key never travels in plaintext.
/// It connects at the first call (call it inside a Tokio runtime).
pub fn connect_tls(address: &str, tls: ClientTlsConfig, api_key: Option<&str>) -> Result<Client, Error> {
    let authorization = api_key.map(|key| format!("Bearer {key}").parse()).transpose()?;
    let channel = Endpoint::from_shared(format!("https://{address}"))?
        .tls_config(tls)?
        .connect_lazy();
    Ok(Client::new(InterceptedService::new(channel, ApiKey(authorization))))
}

/// TLS verifying the gateway's certificate against the PEM CA certificates in `ca_file`
/// (`broker-gateway sandbox --secure` writes its CA to `<data-dir>/ca.crt`).
pub fn tls(ca_file: impl AsRef<Path>) -> std::io::Result<ClientTlsConfig> {
    Ok(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(ca_file)?)))
}

/// [`tls`] presenting the client certificate chain in `cert_file` and its private key in `key_file`
/// (PEM): the gateway then knows the caller by its certificate (`[[callers]] tls_subject`).
pub fn mutual_tls(
    ca_file: impl AsRef<Path>,
    cert_file: impl AsRef<Path>,
    key_file: impl AsRef<Path>,
) -> std::io::Result<ClientTlsConfig> {
    let identity = Identity::from_pem(std::fs::read(cert_file)?, std::fs::read(key_file)?);
    Ok(tls(ca_file)?.identity(identity))
}

/// Adds the caller's `authorization` header to every call ([`connect_tls`] makes it).
#[derive(Clone)]
pub struct ApiKey(Option<MetadataValue<Ascii>>);

impl Interceptor for ApiKey {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(authorization) = &self.0 {
            request.metadata_mut().insert("authorization", authorization.clone());
        }
        Ok(request)
    }
}

/// What a failed call says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorDetails {
    pub code: Code,
    pub message: String,
    /// The ErrorReason value's name without its prefix: `AUTHZ_TRANSACTION_INVALID`, `REAUTH_REQUIRED`, ...
    pub reason: String,
    pub metadata: HashMap<String, String>,
    /// How long to wait before retrying, when the gateway says a retry helps.
    pub retry_delay: Option<Duration>,
}

/// The BrokerGateway `google.rpc.ErrorInfo` of a failed call, or `None` when it carries none (a
/// transport failure before the gateway answered, for instance).
pub fn error_info(status: &Status) -> Option<ErrorInfo> {
    status
        .get_details_error_info()
        .filter(|info| info.domain == ERROR_DOMAIN)
}

/// The details of a failed call: its code, message, ErrorInfo reason and metadata, and the
/// `google.rpc.RetryInfo` delay; `None` when it carries no BrokerGateway ErrorInfo.
pub fn error_details(status: &Status) -> Option<ErrorDetails> {
    let info = error_info(status)?;
    Some(ErrorDetails {
        code: status.code(),
        message: status.message().to_owned(),
        reason: info.reason,
        metadata: info.metadata,
        retry_delay: status.get_details_retry_info().and_then(|retry| retry.retry_delay),
    })
}

/// The ErrorInfo reason of a failed call, or `""` when it carries none.
pub fn reason(status: &Status) -> String {
    error_info(status).map(|info| info.reason).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::ErrorDetails as Details;

    fn failure(domain: &str, retry_delay: Option<Duration>) -> Status {
        let mut details = Details::new();
        details.set_error_info(
            "PROVIDER_UNAVAILABLE",
            domain,
            HashMap::from([("provider".to_owned(), "wallet".to_owned())]),
        );
        if retry_delay.is_some() {
            details.set_retry_info(retry_delay);
        }
        Status::with_error_details(Code::Unavailable, "provider wallet is unavailable", details)
    }

    #[test]
    fn a_failure_gives_its_reason_metadata_and_retry_delay() {
        let status = failure(ERROR_DOMAIN, Some(Duration::from_millis(1500)));
        let expected = ErrorDetails {
            code: Code::Unavailable,
            message: "provider wallet is unavailable".to_owned(),
            reason: "PROVIDER_UNAVAILABLE".to_owned(),
            metadata: HashMap::from([("provider".to_owned(), "wallet".to_owned())]),
            retry_delay: Some(Duration::from_millis(1500)),
        };
        assert_eq!(error_details(&status), Some(expected));
        assert_eq!(reason(&status), "PROVIDER_UNAVAILABLE");
    }

    #[test]
    fn without_a_retry_info_there_is_no_delay() {
        let details = error_details(&failure(ERROR_DOMAIN, None)).expect("an ErrorInfo of our domain");
        assert_eq!(details.retry_delay, None);
    }

    #[test]
    fn another_domains_error_info_or_none_is_not_ours() {
        for status in [failure("example.com", None), Status::unavailable("connection refused")] {
            assert!(error_info(&status).is_none());
            assert_eq!(error_details(&status), None);
            assert_eq!(reason(&status), "");
        }
    }

    #[test]
    fn a_key_is_sent_as_a_bearer_authorization() {
        let mut with_key = ApiKey(Some("Bearer bgk_example".parse().unwrap()));
        let request = with_key.call(Request::new(())).unwrap();
        assert_eq!(request.metadata().get("authorization").unwrap(), "Bearer bgk_example");
        let mut without_key = ApiKey(None);
        assert!(without_key
            .call(Request::new(()))
            .unwrap()
            .metadata()
            .get("authorization")
            .is_none());
    }
}
