//! The whole BrokerGateway flow against a sandbox gateway, with the Rust client: it lists providers,
//! starts an authorization, approves it through the wallet simulator's `approve=<username>` shortcut,
//! exchanges the code, reads the user's info and an access token, watches its connections while it
//! revokes the new one (WatchConnections reports REVOKED), and then replays the exchange to show how a
//! failed call's error details are read. Every call carries a deadline.
//!
//! ```sh
//! BROKER_GATEWAY_ADDRESS=127.0.0.1:50051 \
//! BROKER_GATEWAY_REDIRECT_URI=http://127.0.0.1:8765/callback \
//! cargo run --example flow
//! ```
//!
//! Against a gateway with TLS and callers (`broker-gateway sandbox --secure` writes both values to its
//! sandbox.json as ca_file and api_key), set BROKER_GATEWAY_CA_FILE and BROKER_GATEWAY_API_KEY: the
//! example then connects over TLS and sends `authorization: Bearer <key>` with every call.

use std::collections::HashMap;
use std::time::Duration;

use broker_gateway_client::v1::{
    AuthorizeRequest, ConnectionEventType, ConnectionStatus, ExchangeRequest, GetAccessTokenRequest,
    GetUserInfoRequest, ListProvidersRequest, RevokeRequest, WatchConnectionsRequest,
};
use broker_gateway_client::{connect_insecure, connect_tls, error_details, error_info, tls, Client, Error};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::{header, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;

/// The deadline of each gateway call; the gateway derives its upstream timeouts from it.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), Error> {
    let address = env("BROKER_GATEWAY_ADDRESS", "127.0.0.1:50051");
    let redirect_uri = env("BROKER_GATEWAY_REDIRECT_URI", "http://127.0.0.1:8765/callback");
    let username = env("BROKER_GATEWAY_USERNAME", "alice");
    let mut client = connect(
        &address,
        &env("BROKER_GATEWAY_CA_FILE", ""),
        &env("BROKER_GATEWAY_API_KEY", ""),
    )?;

    let providers = client
        .list_providers(deadline(ListProvidersRequest::default()))
        .await?
        .into_inner();
    for provider in providers.providers {
        println!("provider: {} ({})", provider.id, provider.r#type);
    }

    let start = client
        .authorize(deadline(AuthorizeRequest {
            provider: "wallet".into(),
            redirect_uri,
            scopes: vec!["profile".into(), "balance".into()],
            ..Default::default()
        }))
        .await?
        .into_inner();

    // A person would open the URL and press Authorize; the simulator's shortcut approves at once and
    // redirects to the callback with the code and state.
    let mut callback = approve(&start.authorization_url, &username).await?;
    let take = |callback: &mut HashMap<String, String>, name: &str| callback.remove(name).unwrap_or_default();
    let exchange = ExchangeRequest {
        state: take(&mut callback, "state"),
        code: take(&mut callback, "code"),
        iss: take(&mut callback, "iss"),
        ..Default::default()
    };
    let connection = client
        .exchange(deadline(exchange.clone()))
        .await?
        .into_inner()
        .connection
        .ok_or("Exchange returned no connection")?;
    println!("connection_id: {}", connection.connection_id);
    println!(
        "status: {}",
        ConnectionStatus::try_from(connection.status)?.as_str_name()
    );

    let info = client
        .get_user_info(deadline(GetUserInfoRequest {
            connection_id: connection.connection_id.clone(),
        }))
        .await?
        .into_inner()
        .user_info
        .ok_or("GetUserInfo returned no user info")?;
    println!("subject: {}", info.subject);
    println!("username: {}", info.username);

    // The token is a secret: the example shows only its type and expiry.
    let token = client
        .get_access_token(deadline(GetAccessTokenRequest {
            connection_id: connection.connection_id.clone(),
        }))
        .await?
        .into_inner();
    println!("token_type: {}", token.token_type);
    println!(
        "token_expire_seconds: {}",
        token.expire_time.map(|time| time.seconds).unwrap_or_default()
    );

    watch_revoke(&mut client, &connection.connection_id).await?;

    // A state works once: replaying the exchange fails with FAILED_PRECONDITION and an ErrorInfo whose
    // reason is AUTHZ_TRANSACTION_INVALID.
    let status = match client.exchange(deadline(exchange)).await {
        Ok(_) => return Err("the replayed Exchange succeeded".into()),
        Err(status) => status,
    };
    let (Some(details), Some(info)) = (error_details(&status), error_info(&status)) else {
        return Err(format!("the replayed Exchange failed without an ErrorInfo: {status}").into());
    };
    println!("error_code: {:?}", details.code);
    println!("error_reason: {}", details.reason);
    println!("error_domain: {}", info.domain);
    println!("error_retry_delay: {:?}", details.retry_delay);
    Ok(())
}

/// Watches the wallet's connections, revokes `connection_id` and waits for its REVOKED event. The
/// stream opens with a HEARTBEAT: once it has arrived, every later change is delivered. A real watcher
/// keeps the last cursor it received and resumes from it (`WatchConnectionsRequest::after`).
async fn watch_revoke(client: &mut Client, connection_id: &str) -> Result<(), Error> {
    let mut stream = client
        .watch_connections(deadline(WatchConnectionsRequest {
            provider: "wallet".into(),
            ..Default::default()
        }))
        .await?
        .into_inner();
    stream.message().await?.ok_or("the watch ended before its first HEARTBEAT")?;
    client
        .revoke(deadline(RevokeRequest {
            connection_id: connection_id.into(),
        }))
        .await?;
    while let Some(response) = stream.message().await? {
        let Some(event) = response.event else { continue };
        let revoked = event.r#type == ConnectionEventType::Revoked as i32;
        if revoked && event.connection.as_ref().is_some_and(|c| c.connection_id == connection_id) {
            println!("watch_event: {}", ConnectionEventType::Revoked.as_str_name());
            println!("watch_connection_id: {connection_id}");
            println!("watch_cursor: {}", event.cursor);
            return Ok(());
        }
    }
    Err("the watch ended before the REVOKED event".into())
}

/// TLS when given a CA file, and the API key when given one (the key needs TLS).
fn connect(address: &str, ca_file: &str, api_key: &str) -> Result<Client, Error> {
    let api_key = Some(api_key).filter(|key| !key.is_empty());
    if !ca_file.is_empty() {
        return connect_tls(address, tls(ca_file)?, api_key);
    }
    if api_key.is_some() {
        return Err("BROKER_GATEWAY_API_KEY needs BROKER_GATEWAY_CA_FILE: a key is never sent without TLS".into());
    }
    connect_insecure(address)
}

/// A request with the call's deadline.
fn deadline<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

/// Requests `authorization_url` with the simulator's approve=<username> shortcut, without following the
/// redirect, and returns the callback's query parameters. One HTTP/1.1 request on hyper's connection API
/// (hyper is in tonic's tree already; the simulator is plain HTTP on loopback).
async fn approve(authorization_url: &str, username: &str) -> Result<HashMap<String, String>, Error> {
    let escaped: String = form_urlencoded::byte_serialize(username.as_bytes()).collect();
    let uri: Uri = format!("{authorization_url}&approve={escaped}").parse()?;
    let authority = uri.authority().ok_or("the authorization URL has no host")?.clone();
    let stream = tokio::time::timeout(CALL_TIMEOUT, tokio::net::TcpStream::connect(authority.as_str())).await??;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::get(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header(header::HOST, authority.as_str())
        .body(Empty::<Bytes>::new())?;
    let response = tokio::time::timeout(CALL_TIMEOUT, sender.send_request(request)).await??;
    if response.status() != StatusCode::FOUND {
        return Err(format!("expected a 302 from the simulator, got {}", response.status()).into());
    }
    let location: Uri = response
        .headers()
        .get(header::LOCATION)
        .ok_or("the 302 has no Location")?
        .to_str()?
        .parse()?;
    Ok(form_urlencoded::parse(location.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect())
}

fn env(name: &str, fallback: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| fallback.to_owned())
}
