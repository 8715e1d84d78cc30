package io.github.brokergateway.client;

import io.grpc.CallCredentials;
import io.grpc.ChannelCredentials;
import io.grpc.Metadata;
import io.grpc.SecurityLevel;
import io.grpc.Status;
import io.grpc.TlsChannelCredentials;
import java.io.File;
import java.io.IOException;
import java.util.concurrent.Executor;

/**
 * The credentials a gateway with TLS and callers needs: channel credentials that verify the
 * gateway's certificate (and, for mutual TLS, present the caller's), and call credentials that send
 * the caller's API key. Combine them for a channel whose every call carries the key:
 *
 * <pre>{@code
 * ManagedChannel channel = Grpc.newChannelBuilder(address,
 *     CompositeChannelCredentials.create(
 *         GatewayCredentials.tls(new File("ca.crt")), GatewayCredentials.apiKey(key))).build();
 * }</pre>
 */
public final class GatewayCredentials {
  private static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private GatewayCredentials() {}

  /**
   * TLS verifying the gateway's certificate against the PEM CA certificates in {@code caFile}
   * ({@code broker-gateway sandbox --secure} writes its CA to {@code <data-dir>/ca.crt}).
   */
  public static ChannelCredentials tls(File caFile) throws IOException {
    return TlsChannelCredentials.newBuilder().trustManager(caFile).build();
  }

  /**
   * Mutual TLS: {@link #tls(File)}, presenting the client certificate chain in {@code certFile} and
   * its PKCS#8 private key in {@code keyFile} (PEM), by which the gateway knows the caller
   * ({@code [[callers]] tls_subject}).
   */
  public static ChannelCredentials mutualTls(File caFile, File certFile, File keyFile)
      throws IOException {
    return TlsChannelCredentials.newBuilder().trustManager(caFile).keyManager(certFile, keyFile).build();
  }

  /**
   * Sends {@code authorization: Bearer <key>} with every call ({@code broker-gateway new-caller-key}
   * makes a key). A call on a connection without TLS fails UNAUTHENTICATED before it is sent, so a
   * key never travels in plaintext.
   */
  public static CallCredentials apiKey(String key) {
    return new ApiKey("Bearer " + key);
  }

  private static final class ApiKey extends CallCredentials {
    private final String authorization;

    ApiKey(String authorization) {
      this.authorization = authorization;
    }

    @Override
    public void applyRequestMetadata(
        RequestInfo requestInfo, Executor appExecutor, MetadataApplier applier) {
      if (requestInfo.getSecurityLevel() != SecurityLevel.PRIVACY_AND_INTEGRITY) {
        applier.fail(
            Status.UNAUTHENTICATED.withDescription("refusing to send the API key without TLS"));
        return;
      }
      Metadata headers = new Metadata();
      headers.put(AUTHORIZATION, authorization);
      applier.apply(headers);
    }
  }
}
