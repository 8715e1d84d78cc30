package io.github.brokergateway.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * BrokerGateway links users' accounts at exchanges and OAuth 2.0 / OpenID Connect providers, keeps
 * their tokens, and calls the providers' APIs on the caller's behalf. Every failure is a status with
 * one `google.rpc.ErrorInfo` (domain `broker-gateway`, reasons in ErrorReason).
 * </pre>
 */
@io.grpc.stub.annotations.GrpcGenerated
public final class BrokerGatewayGrpc {

  private BrokerGatewayGrpc() {}

  public static final java.lang.String SERVICE_NAME = "broker_gateway.v1.BrokerGateway";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<io.github.brokergateway.v1.ListProvidersRequest,
      io.github.brokergateway.v1.ListProvidersResponse> getListProvidersMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListProviders",
      requestType = io.github.brokergateway.v1.ListProvidersRequest.class,
      responseType = io.github.brokergateway.v1.ListProvidersResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.github.brokergateway.v1.ListProvidersRequest,
      io.github.brokergateway.v1.ListProvidersResponse> getListProvidersMethod() {
    io.grpc.MethodDescriptor<io.github.brokergateway.v1.ListProvidersRequest, io.github.brokergateway.v1.ListProvidersResponse> getListProvidersMethod;
    if ((getListProvidersMethod = BrokerGatewayGrpc.getListProvidersMethod) == null) {
      synchronized (BrokerGatewayGrpc.class) {
        if ((getListProvidersMethod = BrokerGatewayGrpc.getListProvidersMethod) == null) {
          BrokerGatewayGrpc.getListProvidersMethod = getListProvidersMethod =
              io.grpc.MethodDescriptor.<io.github.brokergateway.v1.ListProvidersRequest, io.github.brokergateway.v1.ListProvidersResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListProviders"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.ListProvidersRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.ListProvidersResponse.getDefaultInstance()))
              .setSchemaDescriptor(new BrokerGatewayMethodDescriptorSupplier("ListProviders"))
              .build();
        }
      }
    }
    return getListProvidersMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.github.brokergateway.v1.AuthorizeRequest,
      io.github.brokergateway.v1.AuthorizeResponse> getAuthorizeMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Authorize",
      requestType = io.github.brokergateway.v1.AuthorizeRequest.class,
      responseType = io.github.brokergateway.v1.AuthorizeResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.github.brokergateway.v1.AuthorizeRequest,
      io.github.brokergateway.v1.AuthorizeResponse> getAuthorizeMethod() {
    io.grpc.MethodDescriptor<io.github.brokergateway.v1.AuthorizeRequest, io.github.brokergateway.v1.AuthorizeResponse> getAuthorizeMethod;
    if ((getAuthorizeMethod = BrokerGatewayGrpc.getAuthorizeMethod) == null) {
      synchronized (BrokerGatewayGrpc.class) {
        if ((getAuthorizeMethod = BrokerGatewayGrpc.getAuthorizeMethod) == null) {
          BrokerGatewayGrpc.getAuthorizeMethod = getAuthorizeMethod =
              io.grpc.MethodDescriptor.<io.github.brokergateway.v1.AuthorizeRequest, io.github.brokergateway.v1.AuthorizeResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Authorize"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.AuthorizeRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.AuthorizeResponse.getDefaultInstance()))
              .setSchemaDescriptor(new BrokerGatewayMethodDescriptorSupplier("Authorize"))
              .build();
        }
      }
    }
    return getAuthorizeMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.github.brokergateway.v1.ExchangeRequest,
      io.github.brokergateway.v1.ExchangeResponse> getExchangeMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Exchange",
      requestType = io.github.brokergateway.v1.ExchangeRequest.class,
      responseType = io.github.brokergateway.v1.ExchangeResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.github.brokergateway.v1.ExchangeRequest,
      io.github.brokergateway.v1.ExchangeResponse> getExchangeMethod() {
    io.grpc.MethodDescriptor<io.github.brokergateway.v1.ExchangeRequest, io.github.brokergateway.v1.ExchangeResponse> getExchangeMethod;
    if ((getExchangeMethod = BrokerGatewayGrpc.getExchangeMethod) == null) {
      synchronized (BrokerGatewayGrpc.class) {
        if ((getExchangeMethod = BrokerGatewayGrpc.getExchangeMethod) == null) {
          BrokerGatewayGrpc.getExchangeMethod = getExchangeMethod =
              io.grpc.MethodDescriptor.<io.github.brokergateway.v1.ExchangeRequest, io.github.brokergateway.v1.ExchangeResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Exchange"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.ExchangeRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.ExchangeResponse.getDefaultInstance()))
              .setSchemaDescriptor(new BrokerGatewayMethodDescriptorSupplier("Exchange"))
              .build();
        }
      }
    }
    return getExchangeMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.github.brokergateway.v1.RefreshRequest,
      io.github.brokergateway.v1.RefreshResponse> getRefreshMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Refresh",
      requestType = io.github.brokergateway.v1.RefreshRequest.class,
      responseType = io.github.brokergateway.v1.RefreshResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.github.brokergateway.v1.RefreshRequest,
      io.github.brokergateway.v1.RefreshResponse> getRefreshMethod() {
    io.grpc.MethodDescriptor<io.github.brokergateway.v1.RefreshRequest, io.github.brokergateway.v1.RefreshResponse> getRefreshMethod;
    if ((getRefreshMethod = BrokerGatewayGrpc.getRefreshMethod) == null) {
      synchronized (BrokerGatewayGrpc.class) {
        if ((getRefreshMethod = BrokerGatewayGrpc.getRefreshMethod) == null) {
          BrokerGatewayGrpc.getRefreshMethod = getRefreshMethod =
              io.grpc.MethodDescriptor.<io.github.brokergateway.v1.RefreshRequest, io.github.brokergateway.v1.RefreshResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Refresh"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.RefreshRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.RefreshResponse.getDefaultInstance()))
              .setSchemaDescriptor(new BrokerGatewayMethodDescriptorSupplier("Refresh"))
              .build();
        }
      }
    }
    return getRefreshMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.github.brokergateway.v1.RevokeRequest,
      io.github.brokergateway.v1.RevokeResponse> getRevokeMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Revoke",
      requestType = io.github.brokergateway.v1.RevokeRequest.class,
      responseType = io.github.brokergateway.v1.RevokeResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.github.brokergateway.v1.RevokeRequest,
      io.github.brokergateway.v1.RevokeResponse> getRevokeMethod() {
    io.grpc.MethodDescriptor<io.github.brokergateway.v1.RevokeRequest, io.github.brokergateway.v1.RevokeResponse> getRevokeMethod;
    if ((getRevokeMethod = BrokerGatewayGrpc.getRevokeMethod) == null) {
      synchronized (BrokerGatewayGrpc.class) {
        if ((getRevokeMethod = BrokerGatewayGrpc.getRevokeMethod) == null) {
          BrokerGatewayGrpc.getRevokeMethod = getRevokeMethod =
              io.grpc.MethodDescriptor.<io.github.brokergateway.v1.RevokeRequest, io.github.brokergateway.v1.RevokeResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Revoke"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.RevokeRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.RevokeResponse.getDefaultInstance()))
              .setSchemaDescriptor(new BrokerGatewayMethodDescriptorSupplier("Revoke"))
              .build();
        }
      }
    }
    return getRevokeMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.github.brokergateway.v1.GetUserInfoRequest,
      io.github.brokergateway.v1.GetUserInfoResponse> getGetUserInfoMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetUserInfo",
      requestType = io.github.brokergateway.v1.GetUserInfoRequest.class,
      responseType = io.github.brokergateway.v1.GetUserInfoResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.github.brokergateway.v1.GetUserInfoRequest,
      io.github.brokergateway.v1.GetUserInfoResponse> getGetUserInfoMethod() {
    io.grpc.MethodDescriptor<io.github.brokergateway.v1.GetUserInfoRequest, io.github.brokergateway.v1.GetUserInfoResponse> getGetUserInfoMethod;
    if ((getGetUserInfoMethod = BrokerGatewayGrpc.getGetUserInfoMethod) == null) {
      synchronized (BrokerGatewayGrpc.class) {
        if ((getGetUserInfoMethod = BrokerGatewayGrpc.getGetUserInfoMethod) == null) {
          BrokerGatewayGrpc.getGetUserInfoMethod = getGetUserInfoMethod =
              io.grpc.MethodDescriptor.<io.github.brokergateway.v1.GetUserInfoRequest, io.github.brokergateway.v1.GetUserInfoResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetUserInfo"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.GetUserInfoRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.GetUserInfoResponse.getDefaultInstance()))
              .setSchemaDescriptor(new BrokerGatewayMethodDescriptorSupplier("GetUserInfo"))
              .build();
        }
      }
    }
    return getGetUserInfoMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.github.brokergateway.v1.GetAccessTokenRequest,
      io.github.brokergateway.v1.GetAccessTokenResponse> getGetAccessTokenMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetAccessToken",
      requestType = io.github.brokergateway.v1.GetAccessTokenRequest.class,
      responseType = io.github.brokergateway.v1.GetAccessTokenResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.github.brokergateway.v1.GetAccessTokenRequest,
      io.github.brokergateway.v1.GetAccessTokenResponse> getGetAccessTokenMethod() {
    io.grpc.MethodDescriptor<io.github.brokergateway.v1.GetAccessTokenRequest, io.github.brokergateway.v1.GetAccessTokenResponse> getGetAccessTokenMethod;
    if ((getGetAccessTokenMethod = BrokerGatewayGrpc.getGetAccessTokenMethod) == null) {
      synchronized (BrokerGatewayGrpc.class) {
        if ((getGetAccessTokenMethod = BrokerGatewayGrpc.getGetAccessTokenMethod) == null) {
          BrokerGatewayGrpc.getGetAccessTokenMethod = getGetAccessTokenMethod =
              io.grpc.MethodDescriptor.<io.github.brokergateway.v1.GetAccessTokenRequest, io.github.brokergateway.v1.GetAccessTokenResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetAccessToken"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.GetAccessTokenRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.GetAccessTokenResponse.getDefaultInstance()))
              .setSchemaDescriptor(new BrokerGatewayMethodDescriptorSupplier("GetAccessToken"))
              .build();
        }
      }
    }
    return getGetAccessTokenMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.github.brokergateway.v1.InvokeOperationRequest,
      io.github.brokergateway.v1.InvokeOperationResponse> getInvokeOperationMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "InvokeOperation",
      requestType = io.github.brokergateway.v1.InvokeOperationRequest.class,
      responseType = io.github.brokergateway.v1.InvokeOperationResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.github.brokergateway.v1.InvokeOperationRequest,
      io.github.brokergateway.v1.InvokeOperationResponse> getInvokeOperationMethod() {
    io.grpc.MethodDescriptor<io.github.brokergateway.v1.InvokeOperationRequest, io.github.brokergateway.v1.InvokeOperationResponse> getInvokeOperationMethod;
    if ((getInvokeOperationMethod = BrokerGatewayGrpc.getInvokeOperationMethod) == null) {
      synchronized (BrokerGatewayGrpc.class) {
        if ((getInvokeOperationMethod = BrokerGatewayGrpc.getInvokeOperationMethod) == null) {
          BrokerGatewayGrpc.getInvokeOperationMethod = getInvokeOperationMethod =
              io.grpc.MethodDescriptor.<io.github.brokergateway.v1.InvokeOperationRequest, io.github.brokergateway.v1.InvokeOperationResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "InvokeOperation"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.InvokeOperationRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.InvokeOperationResponse.getDefaultInstance()))
              .setSchemaDescriptor(new BrokerGatewayMethodDescriptorSupplier("InvokeOperation"))
              .build();
        }
      }
    }
    return getInvokeOperationMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.github.brokergateway.v1.GetConnectionRequest,
      io.github.brokergateway.v1.GetConnectionResponse> getGetConnectionMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetConnection",
      requestType = io.github.brokergateway.v1.GetConnectionRequest.class,
      responseType = io.github.brokergateway.v1.GetConnectionResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.github.brokergateway.v1.GetConnectionRequest,
      io.github.brokergateway.v1.GetConnectionResponse> getGetConnectionMethod() {
    io.grpc.MethodDescriptor<io.github.brokergateway.v1.GetConnectionRequest, io.github.brokergateway.v1.GetConnectionResponse> getGetConnectionMethod;
    if ((getGetConnectionMethod = BrokerGatewayGrpc.getGetConnectionMethod) == null) {
      synchronized (BrokerGatewayGrpc.class) {
        if ((getGetConnectionMethod = BrokerGatewayGrpc.getGetConnectionMethod) == null) {
          BrokerGatewayGrpc.getGetConnectionMethod = getGetConnectionMethod =
              io.grpc.MethodDescriptor.<io.github.brokergateway.v1.GetConnectionRequest, io.github.brokergateway.v1.GetConnectionResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetConnection"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.GetConnectionRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.GetConnectionResponse.getDefaultInstance()))
              .setSchemaDescriptor(new BrokerGatewayMethodDescriptorSupplier("GetConnection"))
              .build();
        }
      }
    }
    return getGetConnectionMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.github.brokergateway.v1.ListConnectionsRequest,
      io.github.brokergateway.v1.ListConnectionsResponse> getListConnectionsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListConnections",
      requestType = io.github.brokergateway.v1.ListConnectionsRequest.class,
      responseType = io.github.brokergateway.v1.ListConnectionsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.github.brokergateway.v1.ListConnectionsRequest,
      io.github.brokergateway.v1.ListConnectionsResponse> getListConnectionsMethod() {
    io.grpc.MethodDescriptor<io.github.brokergateway.v1.ListConnectionsRequest, io.github.brokergateway.v1.ListConnectionsResponse> getListConnectionsMethod;
    if ((getListConnectionsMethod = BrokerGatewayGrpc.getListConnectionsMethod) == null) {
      synchronized (BrokerGatewayGrpc.class) {
        if ((getListConnectionsMethod = BrokerGatewayGrpc.getListConnectionsMethod) == null) {
          BrokerGatewayGrpc.getListConnectionsMethod = getListConnectionsMethod =
              io.grpc.MethodDescriptor.<io.github.brokergateway.v1.ListConnectionsRequest, io.github.brokergateway.v1.ListConnectionsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListConnections"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.ListConnectionsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.ListConnectionsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new BrokerGatewayMethodDescriptorSupplier("ListConnections"))
              .build();
        }
      }
    }
    return getListConnectionsMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.github.brokergateway.v1.DeleteConnectionRequest,
      io.github.brokergateway.v1.DeleteConnectionResponse> getDeleteConnectionMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "DeleteConnection",
      requestType = io.github.brokergateway.v1.DeleteConnectionRequest.class,
      responseType = io.github.brokergateway.v1.DeleteConnectionResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.github.brokergateway.v1.DeleteConnectionRequest,
      io.github.brokergateway.v1.DeleteConnectionResponse> getDeleteConnectionMethod() {
    io.grpc.MethodDescriptor<io.github.brokergateway.v1.DeleteConnectionRequest, io.github.brokergateway.v1.DeleteConnectionResponse> getDeleteConnectionMethod;
    if ((getDeleteConnectionMethod = BrokerGatewayGrpc.getDeleteConnectionMethod) == null) {
      synchronized (BrokerGatewayGrpc.class) {
        if ((getDeleteConnectionMethod = BrokerGatewayGrpc.getDeleteConnectionMethod) == null) {
          BrokerGatewayGrpc.getDeleteConnectionMethod = getDeleteConnectionMethod =
              io.grpc.MethodDescriptor.<io.github.brokergateway.v1.DeleteConnectionRequest, io.github.brokergateway.v1.DeleteConnectionResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "DeleteConnection"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.DeleteConnectionRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.DeleteConnectionResponse.getDefaultInstance()))
              .setSchemaDescriptor(new BrokerGatewayMethodDescriptorSupplier("DeleteConnection"))
              .build();
        }
      }
    }
    return getDeleteConnectionMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.github.brokergateway.v1.WatchConnectionsRequest,
      io.github.brokergateway.v1.WatchConnectionsResponse> getWatchConnectionsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "WatchConnections",
      requestType = io.github.brokergateway.v1.WatchConnectionsRequest.class,
      responseType = io.github.brokergateway.v1.WatchConnectionsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
  public static io.grpc.MethodDescriptor<io.github.brokergateway.v1.WatchConnectionsRequest,
      io.github.brokergateway.v1.WatchConnectionsResponse> getWatchConnectionsMethod() {
    io.grpc.MethodDescriptor<io.github.brokergateway.v1.WatchConnectionsRequest, io.github.brokergateway.v1.WatchConnectionsResponse> getWatchConnectionsMethod;
    if ((getWatchConnectionsMethod = BrokerGatewayGrpc.getWatchConnectionsMethod) == null) {
      synchronized (BrokerGatewayGrpc.class) {
        if ((getWatchConnectionsMethod = BrokerGatewayGrpc.getWatchConnectionsMethod) == null) {
          BrokerGatewayGrpc.getWatchConnectionsMethod = getWatchConnectionsMethod =
              io.grpc.MethodDescriptor.<io.github.brokergateway.v1.WatchConnectionsRequest, io.github.brokergateway.v1.WatchConnectionsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "WatchConnections"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.WatchConnectionsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.github.brokergateway.v1.WatchConnectionsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new BrokerGatewayMethodDescriptorSupplier("WatchConnections"))
              .build();
        }
      }
    }
    return getWatchConnectionsMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static BrokerGatewayStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<BrokerGatewayStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<BrokerGatewayStub>() {
        @java.lang.Override
        public BrokerGatewayStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new BrokerGatewayStub(channel, callOptions);
        }
      };
    return BrokerGatewayStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports all types of calls on the service
   */
  public static BrokerGatewayBlockingV2Stub newBlockingV2Stub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<BrokerGatewayBlockingV2Stub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<BrokerGatewayBlockingV2Stub>() {
        @java.lang.Override
        public BrokerGatewayBlockingV2Stub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new BrokerGatewayBlockingV2Stub(channel, callOptions);
        }
      };
    return BrokerGatewayBlockingV2Stub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static BrokerGatewayBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<BrokerGatewayBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<BrokerGatewayBlockingStub>() {
        @java.lang.Override
        public BrokerGatewayBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new BrokerGatewayBlockingStub(channel, callOptions);
        }
      };
    return BrokerGatewayBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static BrokerGatewayFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<BrokerGatewayFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<BrokerGatewayFutureStub>() {
        @java.lang.Override
        public BrokerGatewayFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new BrokerGatewayFutureStub(channel, callOptions);
        }
      };
    return BrokerGatewayFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * BrokerGateway links users' accounts at exchanges and OAuth 2.0 / OpenID Connect providers, keeps
   * their tokens, and calls the providers' APIs on the caller's behalf. Every failure is a status with
   * one `google.rpc.ErrorInfo` (domain `broker-gateway`, reasons in ErrorReason).
   * </pre>
   */
  public interface AsyncService {

    /**
     * <pre>
     * Lists the configured providers with their capabilities, scopes and operations.
     * </pre>
     */
    default void listProviders(io.github.brokergateway.v1.ListProvidersRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.ListProvidersResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListProvidersMethod(), responseObserver);
    }

    /**
     * <pre>
     * Starts an authorization: returns the provider URL to send the user to and the `state` that
     * Exchange will present. Nothing is sent to the provider.
     * </pre>
     */
    default void authorize(io.github.brokergateway.v1.AuthorizeRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.AuthorizeResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getAuthorizeMethod(), responseObserver);
    }

    /**
     * <pre>
     * Completes an authorization with the parameters the provider's callback carried: consumes the
     * state, exchanges the code and stores the tokens. Not safe to retry: a code works once.
     * </pre>
     */
    default void exchange(io.github.brokergateway.v1.ExchangeRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.ExchangeResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getExchangeMethod(), responseObserver);
    }

    /**
     * <pre>
     * Refreshes a connection's tokens now, whether or not they are near expiry.
     * </pre>
     */
    default void refresh(io.github.brokergateway.v1.RefreshRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.RefreshResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getRefreshMethod(), responseObserver);
    }

    /**
     * <pre>
     * Revokes a connection's tokens at the provider where it can, and marks the connection REVOKED.
     * </pre>
     */
    default void revoke(io.github.brokergateway.v1.RevokeRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.RevokeResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getRevokeMethod(), responseObserver);
    }

    /**
     * <pre>
     * Fetches the connected user's profile from the provider.
     * </pre>
     */
    default void getUserInfo(io.github.brokergateway.v1.GetUserInfoRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.GetUserInfoResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetUserInfoMethod(), responseObserver);
    }

    /**
     * <pre>
     * Returns a valid access token for a connection, refreshing it first when it is near expiry. The
     * only RPC that returns a token.
     * </pre>
     */
    default void getAccessToken(io.github.brokergateway.v1.GetAccessTokenRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.GetAccessTokenResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetAccessTokenMethod(), responseObserver);
    }

    /**
     * <pre>
     * Calls one of a provider's broker operations.
     * </pre>
     */
    default void invokeOperation(io.github.brokergateway.v1.InvokeOperationRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.InvokeOperationResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getInvokeOperationMethod(), responseObserver);
    }

    /**
     * <pre>
     * Returns one connection.
     * </pre>
     */
    default void getConnection(io.github.brokergateway.v1.GetConnectionRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.GetConnectionResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetConnectionMethod(), responseObserver);
    }

    /**
     * <pre>
     * Lists connections, oldest first, a page at a time.
     * </pre>
     */
    default void listConnections(io.github.brokergateway.v1.ListConnectionsRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.ListConnectionsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListConnectionsMethod(), responseObserver);
    }

    /**
     * <pre>
     * Deletes a connection and its tokens from the gateway, without contacting the provider.
     * </pre>
     */
    default void deleteConnection(io.github.brokergateway.v1.DeleteConnectionRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.DeleteConnectionResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getDeleteConnectionMethod(), responseObserver);
    }

    /**
     * <pre>
     * Streams changes to the caller's connections as they are committed, in order, each with a cursor:
     * a caller that comes back with its last cursor gets every later change exactly once. The stream
     * starts with a HEARTBEAT carrying the current position and sends another after every idle
     * interval; it ends only with an error status (resume with the last cursor received).
     * </pre>
     */
    default void watchConnections(io.github.brokergateway.v1.WatchConnectionsRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.WatchConnectionsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getWatchConnectionsMethod(), responseObserver);
    }
  }

  /**
   * Base class for the server implementation of the service BrokerGateway.
   * <pre>
   * BrokerGateway links users' accounts at exchanges and OAuth 2.0 / OpenID Connect providers, keeps
   * their tokens, and calls the providers' APIs on the caller's behalf. Every failure is a status with
   * one `google.rpc.ErrorInfo` (domain `broker-gateway`, reasons in ErrorReason).
   * </pre>
   */
  public static abstract class BrokerGatewayImplBase
      implements io.grpc.BindableService, AsyncService {

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return BrokerGatewayGrpc.bindService(this);
    }
  }

  /**
   * A stub to allow clients to do asynchronous rpc calls to service BrokerGateway.
   * <pre>
   * BrokerGateway links users' accounts at exchanges and OAuth 2.0 / OpenID Connect providers, keeps
   * their tokens, and calls the providers' APIs on the caller's behalf. Every failure is a status with
   * one `google.rpc.ErrorInfo` (domain `broker-gateway`, reasons in ErrorReason).
   * </pre>
   */
  public static final class BrokerGatewayStub
      extends io.grpc.stub.AbstractAsyncStub<BrokerGatewayStub> {
    private BrokerGatewayStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected BrokerGatewayStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new BrokerGatewayStub(channel, callOptions);
    }

    /**
     * <pre>
     * Lists the configured providers with their capabilities, scopes and operations.
     * </pre>
     */
    public void listProviders(io.github.brokergateway.v1.ListProvidersRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.ListProvidersResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListProvidersMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Starts an authorization: returns the provider URL to send the user to and the `state` that
     * Exchange will present. Nothing is sent to the provider.
     * </pre>
     */
    public void authorize(io.github.brokergateway.v1.AuthorizeRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.AuthorizeResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getAuthorizeMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Completes an authorization with the parameters the provider's callback carried: consumes the
     * state, exchanges the code and stores the tokens. Not safe to retry: a code works once.
     * </pre>
     */
    public void exchange(io.github.brokergateway.v1.ExchangeRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.ExchangeResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getExchangeMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Refreshes a connection's tokens now, whether or not they are near expiry.
     * </pre>
     */
    public void refresh(io.github.brokergateway.v1.RefreshRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.RefreshResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getRefreshMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Revokes a connection's tokens at the provider where it can, and marks the connection REVOKED.
     * </pre>
     */
    public void revoke(io.github.brokergateway.v1.RevokeRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.RevokeResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getRevokeMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Fetches the connected user's profile from the provider.
     * </pre>
     */
    public void getUserInfo(io.github.brokergateway.v1.GetUserInfoRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.GetUserInfoResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetUserInfoMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Returns a valid access token for a connection, refreshing it first when it is near expiry. The
     * only RPC that returns a token.
     * </pre>
     */
    public void getAccessToken(io.github.brokergateway.v1.GetAccessTokenRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.GetAccessTokenResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetAccessTokenMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Calls one of a provider's broker operations.
     * </pre>
     */
    public void invokeOperation(io.github.brokergateway.v1.InvokeOperationRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.InvokeOperationResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getInvokeOperationMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Returns one connection.
     * </pre>
     */
    public void getConnection(io.github.brokergateway.v1.GetConnectionRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.GetConnectionResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetConnectionMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Lists connections, oldest first, a page at a time.
     * </pre>
     */
    public void listConnections(io.github.brokergateway.v1.ListConnectionsRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.ListConnectionsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListConnectionsMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Deletes a connection and its tokens from the gateway, without contacting the provider.
     * </pre>
     */
    public void deleteConnection(io.github.brokergateway.v1.DeleteConnectionRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.DeleteConnectionResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getDeleteConnectionMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Streams changes to the caller's connections as they are committed, in order, each with a cursor:
     * a caller that comes back with its last cursor gets every later change exactly once. The stream
     * starts with a HEARTBEAT carrying the current position and sends another after every idle
     * interval; it ends only with an error status (resume with the last cursor received).
     * </pre>
     */
    public void watchConnections(io.github.brokergateway.v1.WatchConnectionsRequest request,
        io.grpc.stub.StreamObserver<io.github.brokergateway.v1.WatchConnectionsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncServerStreamingCall(
          getChannel().newCall(getWatchConnectionsMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   * A stub to allow clients to do synchronous rpc calls to service BrokerGateway.
   * <pre>
   * BrokerGateway links users' accounts at exchanges and OAuth 2.0 / OpenID Connect providers, keeps
   * their tokens, and calls the providers' APIs on the caller's behalf. Every failure is a status with
   * one `google.rpc.ErrorInfo` (domain `broker-gateway`, reasons in ErrorReason).
   * </pre>
   */
  public static final class BrokerGatewayBlockingV2Stub
      extends io.grpc.stub.AbstractBlockingStub<BrokerGatewayBlockingV2Stub> {
    private BrokerGatewayBlockingV2Stub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected BrokerGatewayBlockingV2Stub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new BrokerGatewayBlockingV2Stub(channel, callOptions);
    }

    /**
     * <pre>
     * Lists the configured providers with their capabilities, scopes and operations.
     * </pre>
     */
    public io.github.brokergateway.v1.ListProvidersResponse listProviders(io.github.brokergateway.v1.ListProvidersRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getListProvidersMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Starts an authorization: returns the provider URL to send the user to and the `state` that
     * Exchange will present. Nothing is sent to the provider.
     * </pre>
     */
    public io.github.brokergateway.v1.AuthorizeResponse authorize(io.github.brokergateway.v1.AuthorizeRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getAuthorizeMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Completes an authorization with the parameters the provider's callback carried: consumes the
     * state, exchanges the code and stores the tokens. Not safe to retry: a code works once.
     * </pre>
     */
    public io.github.brokergateway.v1.ExchangeResponse exchange(io.github.brokergateway.v1.ExchangeRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getExchangeMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Refreshes a connection's tokens now, whether or not they are near expiry.
     * </pre>
     */
    public io.github.brokergateway.v1.RefreshResponse refresh(io.github.brokergateway.v1.RefreshRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getRefreshMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Revokes a connection's tokens at the provider where it can, and marks the connection REVOKED.
     * </pre>
     */
    public io.github.brokergateway.v1.RevokeResponse revoke(io.github.brokergateway.v1.RevokeRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getRevokeMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Fetches the connected user's profile from the provider.
     * </pre>
     */
    public io.github.brokergateway.v1.GetUserInfoResponse getUserInfo(io.github.brokergateway.v1.GetUserInfoRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getGetUserInfoMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Returns a valid access token for a connection, refreshing it first when it is near expiry. The
     * only RPC that returns a token.
     * </pre>
     */
    public io.github.brokergateway.v1.GetAccessTokenResponse getAccessToken(io.github.brokergateway.v1.GetAccessTokenRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getGetAccessTokenMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Calls one of a provider's broker operations.
     * </pre>
     */
    public io.github.brokergateway.v1.InvokeOperationResponse invokeOperation(io.github.brokergateway.v1.InvokeOperationRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getInvokeOperationMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Returns one connection.
     * </pre>
     */
    public io.github.brokergateway.v1.GetConnectionResponse getConnection(io.github.brokergateway.v1.GetConnectionRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getGetConnectionMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Lists connections, oldest first, a page at a time.
     * </pre>
     */
    public io.github.brokergateway.v1.ListConnectionsResponse listConnections(io.github.brokergateway.v1.ListConnectionsRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getListConnectionsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Deletes a connection and its tokens from the gateway, without contacting the provider.
     * </pre>
     */
    public io.github.brokergateway.v1.DeleteConnectionResponse deleteConnection(io.github.brokergateway.v1.DeleteConnectionRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getDeleteConnectionMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Streams changes to the caller's connections as they are committed, in order, each with a cursor:
     * a caller that comes back with its last cursor gets every later change exactly once. The stream
     * starts with a HEARTBEAT carrying the current position and sends another after every idle
     * interval; it ends only with an error status (resume with the last cursor received).
     * </pre>
     */
    @io.grpc.ExperimentalApi("https://github.com/grpc/grpc-java/issues/10918")
    public io.grpc.stub.BlockingClientCall<?, io.github.brokergateway.v1.WatchConnectionsResponse>
        watchConnections(io.github.brokergateway.v1.WatchConnectionsRequest request) {
      return io.grpc.stub.ClientCalls.blockingV2ServerStreamingCall(
          getChannel(), getWatchConnectionsMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do limited synchronous rpc calls to service BrokerGateway.
   * <pre>
   * BrokerGateway links users' accounts at exchanges and OAuth 2.0 / OpenID Connect providers, keeps
   * their tokens, and calls the providers' APIs on the caller's behalf. Every failure is a status with
   * one `google.rpc.ErrorInfo` (domain `broker-gateway`, reasons in ErrorReason).
   * </pre>
   */
  public static final class BrokerGatewayBlockingStub
      extends io.grpc.stub.AbstractBlockingStub<BrokerGatewayBlockingStub> {
    private BrokerGatewayBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected BrokerGatewayBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new BrokerGatewayBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * Lists the configured providers with their capabilities, scopes and operations.
     * </pre>
     */
    public io.github.brokergateway.v1.ListProvidersResponse listProviders(io.github.brokergateway.v1.ListProvidersRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListProvidersMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Starts an authorization: returns the provider URL to send the user to and the `state` that
     * Exchange will present. Nothing is sent to the provider.
     * </pre>
     */
    public io.github.brokergateway.v1.AuthorizeResponse authorize(io.github.brokergateway.v1.AuthorizeRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getAuthorizeMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Completes an authorization with the parameters the provider's callback carried: consumes the
     * state, exchanges the code and stores the tokens. Not safe to retry: a code works once.
     * </pre>
     */
    public io.github.brokergateway.v1.ExchangeResponse exchange(io.github.brokergateway.v1.ExchangeRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getExchangeMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Refreshes a connection's tokens now, whether or not they are near expiry.
     * </pre>
     */
    public io.github.brokergateway.v1.RefreshResponse refresh(io.github.brokergateway.v1.RefreshRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getRefreshMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Revokes a connection's tokens at the provider where it can, and marks the connection REVOKED.
     * </pre>
     */
    public io.github.brokergateway.v1.RevokeResponse revoke(io.github.brokergateway.v1.RevokeRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getRevokeMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Fetches the connected user's profile from the provider.
     * </pre>
     */
    public io.github.brokergateway.v1.GetUserInfoResponse getUserInfo(io.github.brokergateway.v1.GetUserInfoRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetUserInfoMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Returns a valid access token for a connection, refreshing it first when it is near expiry. The
     * only RPC that returns a token.
     * </pre>
     */
    public io.github.brokergateway.v1.GetAccessTokenResponse getAccessToken(io.github.brokergateway.v1.GetAccessTokenRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetAccessTokenMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Calls one of a provider's broker operations.
     * </pre>
     */
    public io.github.brokergateway.v1.InvokeOperationResponse invokeOperation(io.github.brokergateway.v1.InvokeOperationRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getInvokeOperationMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Returns one connection.
     * </pre>
     */
    public io.github.brokergateway.v1.GetConnectionResponse getConnection(io.github.brokergateway.v1.GetConnectionRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetConnectionMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Lists connections, oldest first, a page at a time.
     * </pre>
     */
    public io.github.brokergateway.v1.ListConnectionsResponse listConnections(io.github.brokergateway.v1.ListConnectionsRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListConnectionsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Deletes a connection and its tokens from the gateway, without contacting the provider.
     * </pre>
     */
    public io.github.brokergateway.v1.DeleteConnectionResponse deleteConnection(io.github.brokergateway.v1.DeleteConnectionRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getDeleteConnectionMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Streams changes to the caller's connections as they are committed, in order, each with a cursor:
     * a caller that comes back with its last cursor gets every later change exactly once. The stream
     * starts with a HEARTBEAT carrying the current position and sends another after every idle
     * interval; it ends only with an error status (resume with the last cursor received).
     * </pre>
     */
    public java.util.Iterator<io.github.brokergateway.v1.WatchConnectionsResponse> watchConnections(
        io.github.brokergateway.v1.WatchConnectionsRequest request) {
      return io.grpc.stub.ClientCalls.blockingServerStreamingCall(
          getChannel(), getWatchConnectionsMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do ListenableFuture-style rpc calls to service BrokerGateway.
   * <pre>
   * BrokerGateway links users' accounts at exchanges and OAuth 2.0 / OpenID Connect providers, keeps
   * their tokens, and calls the providers' APIs on the caller's behalf. Every failure is a status with
   * one `google.rpc.ErrorInfo` (domain `broker-gateway`, reasons in ErrorReason).
   * </pre>
   */
  public static final class BrokerGatewayFutureStub
      extends io.grpc.stub.AbstractFutureStub<BrokerGatewayFutureStub> {
    private BrokerGatewayFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected BrokerGatewayFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new BrokerGatewayFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * Lists the configured providers with their capabilities, scopes and operations.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.github.brokergateway.v1.ListProvidersResponse> listProviders(
        io.github.brokergateway.v1.ListProvidersRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListProvidersMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Starts an authorization: returns the provider URL to send the user to and the `state` that
     * Exchange will present. Nothing is sent to the provider.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.github.brokergateway.v1.AuthorizeResponse> authorize(
        io.github.brokergateway.v1.AuthorizeRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getAuthorizeMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Completes an authorization with the parameters the provider's callback carried: consumes the
     * state, exchanges the code and stores the tokens. Not safe to retry: a code works once.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.github.brokergateway.v1.ExchangeResponse> exchange(
        io.github.brokergateway.v1.ExchangeRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getExchangeMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Refreshes a connection's tokens now, whether or not they are near expiry.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.github.brokergateway.v1.RefreshResponse> refresh(
        io.github.brokergateway.v1.RefreshRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getRefreshMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Revokes a connection's tokens at the provider where it can, and marks the connection REVOKED.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.github.brokergateway.v1.RevokeResponse> revoke(
        io.github.brokergateway.v1.RevokeRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getRevokeMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Fetches the connected user's profile from the provider.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.github.brokergateway.v1.GetUserInfoResponse> getUserInfo(
        io.github.brokergateway.v1.GetUserInfoRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetUserInfoMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Returns a valid access token for a connection, refreshing it first when it is near expiry. The
     * only RPC that returns a token.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.github.brokergateway.v1.GetAccessTokenResponse> getAccessToken(
        io.github.brokergateway.v1.GetAccessTokenRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetAccessTokenMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Calls one of a provider's broker operations.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.github.brokergateway.v1.InvokeOperationResponse> invokeOperation(
        io.github.brokergateway.v1.InvokeOperationRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getInvokeOperationMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Returns one connection.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.github.brokergateway.v1.GetConnectionResponse> getConnection(
        io.github.brokergateway.v1.GetConnectionRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetConnectionMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Lists connections, oldest first, a page at a time.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.github.brokergateway.v1.ListConnectionsResponse> listConnections(
        io.github.brokergateway.v1.ListConnectionsRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListConnectionsMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Deletes a connection and its tokens from the gateway, without contacting the provider.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.github.brokergateway.v1.DeleteConnectionResponse> deleteConnection(
        io.github.brokergateway.v1.DeleteConnectionRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getDeleteConnectionMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_LIST_PROVIDERS = 0;
  private static final int METHODID_AUTHORIZE = 1;
  private static final int METHODID_EXCHANGE = 2;
  private static final int METHODID_REFRESH = 3;
  private static final int METHODID_REVOKE = 4;
  private static final int METHODID_GET_USER_INFO = 5;
  private static final int METHODID_GET_ACCESS_TOKEN = 6;
  private static final int METHODID_INVOKE_OPERATION = 7;
  private static final int METHODID_GET_CONNECTION = 8;
  private static final int METHODID_LIST_CONNECTIONS = 9;
  private static final int METHODID_DELETE_CONNECTION = 10;
  private static final int METHODID_WATCH_CONNECTIONS = 11;

  private static final class MethodHandlers<Req, Resp> implements
      io.grpc.stub.ServerCalls.UnaryMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ServerStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ClientStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.BidiStreamingMethod<Req, Resp> {
    private final AsyncService serviceImpl;
    private final int methodId;

    MethodHandlers(AsyncService serviceImpl, int methodId) {
      this.serviceImpl = serviceImpl;
      this.methodId = methodId;
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public void invoke(Req request, io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        case METHODID_LIST_PROVIDERS:
          serviceImpl.listProviders((io.github.brokergateway.v1.ListProvidersRequest) request,
              (io.grpc.stub.StreamObserver<io.github.brokergateway.v1.ListProvidersResponse>) responseObserver);
          break;
        case METHODID_AUTHORIZE:
          serviceImpl.authorize((io.github.brokergateway.v1.AuthorizeRequest) request,
              (io.grpc.stub.StreamObserver<io.github.brokergateway.v1.AuthorizeResponse>) responseObserver);
          break;
        case METHODID_EXCHANGE:
          serviceImpl.exchange((io.github.brokergateway.v1.ExchangeRequest) request,
              (io.grpc.stub.StreamObserver<io.github.brokergateway.v1.ExchangeResponse>) responseObserver);
          break;
        case METHODID_REFRESH:
          serviceImpl.refresh((io.github.brokergateway.v1.RefreshRequest) request,
              (io.grpc.stub.StreamObserver<io.github.brokergateway.v1.RefreshResponse>) responseObserver);
          break;
        case METHODID_REVOKE:
          serviceImpl.revoke((io.github.brokergateway.v1.RevokeRequest) request,
              (io.grpc.stub.StreamObserver<io.github.brokergateway.v1.RevokeResponse>) responseObserver);
          break;
        case METHODID_GET_USER_INFO:
          serviceImpl.getUserInfo((io.github.brokergateway.v1.GetUserInfoRequest) request,
              (io.grpc.stub.StreamObserver<io.github.brokergateway.v1.GetUserInfoResponse>) responseObserver);
          break;
        case METHODID_GET_ACCESS_TOKEN:
          serviceImpl.getAccessToken((io.github.brokergateway.v1.GetAccessTokenRequest) request,
              (io.grpc.stub.StreamObserver<io.github.brokergateway.v1.GetAccessTokenResponse>) responseObserver);
          break;
        case METHODID_INVOKE_OPERATION:
          serviceImpl.invokeOperation((io.github.brokergateway.v1.InvokeOperationRequest) request,
              (io.grpc.stub.StreamObserver<io.github.brokergateway.v1.InvokeOperationResponse>) responseObserver);
          break;
        case METHODID_GET_CONNECTION:
          serviceImpl.getConnection((io.github.brokergateway.v1.GetConnectionRequest) request,
              (io.grpc.stub.StreamObserver<io.github.brokergateway.v1.GetConnectionResponse>) responseObserver);
          break;
        case METHODID_LIST_CONNECTIONS:
          serviceImpl.listConnections((io.github.brokergateway.v1.ListConnectionsRequest) request,
              (io.grpc.stub.StreamObserver<io.github.brokergateway.v1.ListConnectionsResponse>) responseObserver);
          break;
        case METHODID_DELETE_CONNECTION:
          serviceImpl.deleteConnection((io.github.brokergateway.v1.DeleteConnectionRequest) request,
              (io.grpc.stub.StreamObserver<io.github.brokergateway.v1.DeleteConnectionResponse>) responseObserver);
          break;
        case METHODID_WATCH_CONNECTIONS:
          serviceImpl.watchConnections((io.github.brokergateway.v1.WatchConnectionsRequest) request,
              (io.grpc.stub.StreamObserver<io.github.brokergateway.v1.WatchConnectionsResponse>) responseObserver);
          break;
        default:
          throw new AssertionError();
      }
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public io.grpc.stub.StreamObserver<Req> invoke(
        io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        default:
          throw new AssertionError();
      }
    }
  }

  public static final io.grpc.ServerServiceDefinition bindService(AsyncService service) {
    return io.grpc.ServerServiceDefinition.builder(getServiceDescriptor())
        .addMethod(
          getListProvidersMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.github.brokergateway.v1.ListProvidersRequest,
              io.github.brokergateway.v1.ListProvidersResponse>(
                service, METHODID_LIST_PROVIDERS)))
        .addMethod(
          getAuthorizeMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.github.brokergateway.v1.AuthorizeRequest,
              io.github.brokergateway.v1.AuthorizeResponse>(
                service, METHODID_AUTHORIZE)))
        .addMethod(
          getExchangeMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.github.brokergateway.v1.ExchangeRequest,
              io.github.brokergateway.v1.ExchangeResponse>(
                service, METHODID_EXCHANGE)))
        .addMethod(
          getRefreshMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.github.brokergateway.v1.RefreshRequest,
              io.github.brokergateway.v1.RefreshResponse>(
                service, METHODID_REFRESH)))
        .addMethod(
          getRevokeMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.github.brokergateway.v1.RevokeRequest,
              io.github.brokergateway.v1.RevokeResponse>(
                service, METHODID_REVOKE)))
        .addMethod(
          getGetUserInfoMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.github.brokergateway.v1.GetUserInfoRequest,
              io.github.brokergateway.v1.GetUserInfoResponse>(
                service, METHODID_GET_USER_INFO)))
        .addMethod(
          getGetAccessTokenMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.github.brokergateway.v1.GetAccessTokenRequest,
              io.github.brokergateway.v1.GetAccessTokenResponse>(
                service, METHODID_GET_ACCESS_TOKEN)))
        .addMethod(
          getInvokeOperationMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.github.brokergateway.v1.InvokeOperationRequest,
              io.github.brokergateway.v1.InvokeOperationResponse>(
                service, METHODID_INVOKE_OPERATION)))
        .addMethod(
          getGetConnectionMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.github.brokergateway.v1.GetConnectionRequest,
              io.github.brokergateway.v1.GetConnectionResponse>(
                service, METHODID_GET_CONNECTION)))
        .addMethod(
          getListConnectionsMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.github.brokergateway.v1.ListConnectionsRequest,
              io.github.brokergateway.v1.ListConnectionsResponse>(
                service, METHODID_LIST_CONNECTIONS)))
        .addMethod(
          getDeleteConnectionMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.github.brokergateway.v1.DeleteConnectionRequest,
              io.github.brokergateway.v1.DeleteConnectionResponse>(
                service, METHODID_DELETE_CONNECTION)))
        .addMethod(
          getWatchConnectionsMethod(),
          io.grpc.stub.ServerCalls.asyncServerStreamingCall(
            new MethodHandlers<
              io.github.brokergateway.v1.WatchConnectionsRequest,
              io.github.brokergateway.v1.WatchConnectionsResponse>(
                service, METHODID_WATCH_CONNECTIONS)))
        .build();
  }

  private static abstract class BrokerGatewayBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    BrokerGatewayBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return io.github.brokergateway.v1.BrokerGatewayServiceProto.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("BrokerGateway");
    }
  }

  private static final class BrokerGatewayFileDescriptorSupplier
      extends BrokerGatewayBaseDescriptorSupplier {
    BrokerGatewayFileDescriptorSupplier() {}
  }

  private static final class BrokerGatewayMethodDescriptorSupplier
      extends BrokerGatewayBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final java.lang.String methodName;

    BrokerGatewayMethodDescriptorSupplier(java.lang.String methodName) {
      this.methodName = methodName;
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.MethodDescriptor getMethodDescriptor() {
      return getServiceDescriptor().findMethodByName(methodName);
    }
  }

  private static volatile io.grpc.ServiceDescriptor serviceDescriptor;

  public static io.grpc.ServiceDescriptor getServiceDescriptor() {
    io.grpc.ServiceDescriptor result = serviceDescriptor;
    if (result == null) {
      synchronized (BrokerGatewayGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new BrokerGatewayFileDescriptorSupplier())
              .addMethod(getListProvidersMethod())
              .addMethod(getAuthorizeMethod())
              .addMethod(getExchangeMethod())
              .addMethod(getRefreshMethod())
              .addMethod(getRevokeMethod())
              .addMethod(getGetUserInfoMethod())
              .addMethod(getGetAccessTokenMethod())
              .addMethod(getInvokeOperationMethod())
              .addMethod(getGetConnectionMethod())
              .addMethod(getListConnectionsMethod())
              .addMethod(getDeleteConnectionMethod())
              .addMethod(getWatchConnectionsMethod())
              .build();
        }
      }
    }
    return result;
  }
}
