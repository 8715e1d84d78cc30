package io.github.brokergateway.example;

import com.google.rpc.ErrorInfo;
import io.github.brokergateway.client.ErrorDetails;
import io.github.brokergateway.client.GatewayCredentials;
import io.github.brokergateway.v1.AuthorizeRequest;
import io.github.brokergateway.v1.AuthorizeResponse;
import io.github.brokergateway.v1.BrokerGatewayGrpc;
import io.github.brokergateway.v1.Connection;
import io.github.brokergateway.v1.ConnectionEvent;
import io.github.brokergateway.v1.ConnectionEventType;
import io.github.brokergateway.v1.ExchangeRequest;
import io.github.brokergateway.v1.GetUserInfoRequest;
import io.github.brokergateway.v1.ListProvidersRequest;
import io.github.brokergateway.v1.Provider;
import io.github.brokergateway.v1.RevokeRequest;
import io.github.brokergateway.v1.UserInfo;
import io.github.brokergateway.v1.WatchConnectionsRequest;
import io.github.brokergateway.v1.WatchConnectionsResponse;
import io.grpc.ChannelCredentials;
import io.grpc.Context;
import io.grpc.CompositeChannelCredentials;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import java.io.File;
import java.io.IOException;
import java.net.URI;
import java.net.URLDecoder;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The whole BrokerGateway flow against a sandbox gateway: list providers, start an authorization,
 * approve it through the wallet simulator's {@code approve=<username>} shortcut, exchange the code,
 * read the user's info, watch its connections while revoking the new one (WatchConnections reports
 * REVOKED), then replay the exchange to show how a failed call's
 * {@code google.rpc.ErrorInfo} reason is read. Every call carries a deadline.
 *
 * <p>It reads BROKER_GATEWAY_ADDRESS (default 127.0.0.1:50051), BROKER_GATEWAY_REDIRECT_URI and
 * BROKER_GATEWAY_USERNAME. Against a gateway with TLS and callers ({@code broker-gateway sandbox
 * --secure} writes both values to its sandbox.json as ca_file and api_key), set
 * BROKER_GATEWAY_CA_FILE to the CA certificate that signed the gateway's certificate and
 * BROKER_GATEWAY_API_KEY to the caller's key: the example then connects over TLS and sends {@code
 * authorization: Bearer <key>} with every call. Without them it uses plaintext.
 */
public final class Flow {
  /** The deadline of each gateway call; the gateway derives its upstream timeouts from it. */
  private static final long TIMEOUT_SECONDS = 10;

  public static void main(String[] args) throws Exception {
    String address = env("BROKER_GATEWAY_ADDRESS", "127.0.0.1:50051");
    String redirectUri = env("BROKER_GATEWAY_REDIRECT_URI", "http://127.0.0.1:8765/callback");
    String username = env("BROKER_GATEWAY_USERNAME", "alice");

    ManagedChannel channel =
        Grpc.newChannelBuilder(
                address,
                credentials(System.getenv("BROKER_GATEWAY_CA_FILE"), System.getenv("BROKER_GATEWAY_API_KEY")))
            .build();
    try {
      run(BrokerGatewayGrpc.newBlockingStub(channel), redirectUri, username);
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  /** TLS when given a CA file, the API key on every call when given one (the key needs TLS). */
  private static ChannelCredentials credentials(String caFile, String apiKey) throws IOException {
    ChannelCredentials transport =
        caFile == null || caFile.isEmpty()
            ? InsecureChannelCredentials.create()
            : GatewayCredentials.tls(new File(caFile));
    return apiKey == null || apiKey.isEmpty()
        ? transport
        : CompositeChannelCredentials.create(transport, GatewayCredentials.apiKey(apiKey));
  }

  private static void run(
      BrokerGatewayGrpc.BrokerGatewayBlockingStub gateway, String redirectUri, String username)
      throws Exception {
    for (Provider provider :
        deadline(gateway).listProviders(ListProvidersRequest.getDefaultInstance()).getProvidersList()) {
      System.out.println("provider: " + provider.getId() + " (" + provider.getType() + ")");
    }

    AuthorizeResponse start =
        deadline(gateway)
            .authorize(
                AuthorizeRequest.newBuilder()
                    .setProvider("wallet")
                    .setRedirectUri(redirectUri)
                    .addScopes("profile")
                    .addScopes("balance")
                    .build());

    // A person would open the URL and press Authorize; the simulator's shortcut approves at once
    // and redirects to the callback with the code and state.
    Map<String, String> callback = approve(start.getAuthorizationUrl(), username);
    ExchangeRequest exchange =
        ExchangeRequest.newBuilder()
            .setState(callback.getOrDefault("state", ""))
            .setCode(callback.getOrDefault("code", ""))
            .setIss(callback.getOrDefault("iss", ""))
            .build();
    Connection connection = deadline(gateway).exchange(exchange).getConnection();
    System.out.println("connection_id: " + connection.getConnectionId());
    System.out.println("status: " + connection.getStatus());

    UserInfo info =
        deadline(gateway)
            .getUserInfo(
                GetUserInfoRequest.newBuilder().setConnectionId(connection.getConnectionId()).build())
            .getUserInfo();
    System.out.println("subject: " + info.getSubject());
    System.out.println("username: " + info.getUsername());

    watchRevoke(gateway, connection.getConnectionId());

    // A state works once: replaying the exchange fails with FAILED_PRECONDITION and an ErrorInfo
    // whose reason is AUTHZ_TRANSACTION_INVALID.
    try {
      deadline(gateway).exchange(exchange);
    } catch (StatusRuntimeException failure) {
      ErrorInfo errorInfo =
          ErrorDetails.errorInfo(failure)
              .orElseThrow(
                  () -> new IllegalStateException("the replayed Exchange failed without an ErrorInfo", failure));
      System.out.println("error_code: " + failure.getStatus().getCode());
      System.out.println("error_reason: " + errorInfo.getReason());
      System.out.println("error_domain: " + errorInfo.getDomain());
      return;
    }
    throw new IllegalStateException("the replayed Exchange succeeded");
  }

  /**
   * Watches the wallet's connections, revokes {@code connectionId} and waits for its REVOKED event.
   * The stream opens with a HEARTBEAT: once it has arrived, every later change is delivered. A real
   * watcher keeps the last cursor it received and resumes from it ({@code setAfter}).
   */
  private static void watchRevoke(BrokerGatewayGrpc.BrokerGatewayBlockingStub gateway, String connectionId) {
    // A cancellable context ends the stream when this method is done with it.
    try (Context.CancellableContext watching = Context.current().withCancellation()) {
      watching.run(
          () -> {
            Iterator<WatchConnectionsResponse> stream =
                deadline(gateway).watchConnections(WatchConnectionsRequest.newBuilder().setProvider("wallet").build());
            stream.next();
            deadline(gateway).revoke(RevokeRequest.newBuilder().setConnectionId(connectionId).build());
            while (stream.hasNext()) {
              ConnectionEvent event = stream.next().getEvent();
              if (event.getType() == ConnectionEventType.CONNECTION_EVENT_TYPE_REVOKED
                  && event.getConnection().getConnectionId().equals(connectionId)) {
                System.out.println("watch_event: " + event.getType());
                System.out.println("watch_connection_id: " + event.getConnection().getConnectionId());
                System.out.println("watch_cursor: " + event.getCursor());
                return;
              }
            }
            throw new IllegalStateException("the watch ended before the REVOKED event");
          });
    }
  }

  /** A stub whose next call has its own deadline. */
  private static BrokerGatewayGrpc.BrokerGatewayBlockingStub deadline(
      BrokerGatewayGrpc.BrokerGatewayBlockingStub gateway) {
    return gateway.withDeadlineAfter(TIMEOUT_SECONDS, TimeUnit.SECONDS);
  }

  /**
   * Requests the authorization URL with approve=&lt;username&gt;, without following the redirect,
   * and returns the callback's query parameters.
   */
  private static Map<String, String> approve(String authorizationUrl, String username)
      throws Exception {
    HttpClient http =
        HttpClient.newBuilder()
            .followRedirects(HttpClient.Redirect.NEVER)
            .connectTimeout(Duration.ofSeconds(TIMEOUT_SECONDS))
            .build();
    HttpRequest request =
        HttpRequest.newBuilder(
                URI.create(
                    authorizationUrl + "&approve=" + URLEncoder.encode(username, StandardCharsets.UTF_8)))
            .timeout(Duration.ofSeconds(TIMEOUT_SECONDS))
            .GET()
            .build();
    HttpResponse<Void> response = http.send(request, HttpResponse.BodyHandlers.discarding());
    String location = response.headers().firstValue("location").orElse(null);
    if (response.statusCode() != 302 || location == null) {
      throw new IllegalStateException("expected a 302 from the simulator, got " + response.statusCode());
    }
    Map<String, String> query = new HashMap<>();
    String raw = URI.create(location).getRawQuery();
    for (String pair : raw == null ? new String[0] : raw.split("&")) {
      int eq = pair.indexOf('=');
      String key = eq < 0 ? pair : pair.substring(0, eq);
      String value = eq < 0 ? "" : pair.substring(eq + 1);
      query.put(
          URLDecoder.decode(key, StandardCharsets.UTF_8),
          URLDecoder.decode(value, StandardCharsets.UTF_8));
    }
    return query;
  }

  private static String env(String name, String fallback) {
    String value = System.getenv(name);
    return value == null || value.isEmpty() ? fallback : value;
  }
}
