package io.github.brokergateway.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.ErrorInfo;
import com.google.rpc.Status;
import io.grpc.protobuf.StatusProto;
import java.util.Optional;

/**
 * Reads the {@code google.rpc.ErrorInfo} every failed BrokerGateway call carries. Its reason is the
 * bare name of an {@code ErrorReason} value: {@code "AUTHZ_TRANSACTION_INVALID"},
 * {@code "REAUTH_REQUIRED"}, ...
 */
public final class ErrorDetails {
  /** The ErrorInfo domain of every BrokerGateway error. */
  public static final String DOMAIN = "broker-gateway";

  private ErrorDetails() {}

  /**
   * The ErrorInfo of a failed call ({@code StatusRuntimeException} or {@code StatusException}), or
   * empty when the failure carries none (a transport failure before the gateway answered, say).
   */
  public static Optional<ErrorInfo> errorInfo(Throwable failure) {
    Status status = StatusProto.fromThrowable(failure);
    if (status == null) {
      return Optional.empty();
    }
    for (Any detail : status.getDetailsList()) {
      if (detail.is(ErrorInfo.class)) {
        try {
          ErrorInfo info = detail.unpack(ErrorInfo.class);
          if (DOMAIN.equals(info.getDomain())) {
            return Optional.of(info);
          }
        } catch (InvalidProtocolBufferException e) {
          return Optional.empty();
        }
      }
    }
    return Optional.empty();
  }

  /** The ErrorInfo reason of a failed call, or the empty string when it carries none. */
  public static String reason(Throwable failure) {
    return errorInfo(failure).map(ErrorInfo::getReason).orElse("");
  }
}
