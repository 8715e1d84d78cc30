"""Where the simulator serves each Bybit endpoint, on the one app standing in for all three hosts."""

from __future__ import annotations

# The OAuth page (www.bybit.com).
AUTHORIZE_PATH = "/en/oauth"
AUTHORIZE_PATHS = (AUTHORIZE_PATH, "/oauth")

# The OAuth API (api2.bybit.com).
TOKEN_PATH = "/oauth/v1/public/access_token"
REFRESH_PATH = "/oauth/v1/public/refresh_token"
UID_PATH = "/oauth/v1/resource/restrict/uid_bearer"
OPENAPI_PATH = "/oauth/v1/resource/restrict/openapi"

# The V5 API (api.bybit.com): the broker endpoints.
EARNINGS_PATH = "/v5/broker/earnings-info"
ACCOUNT_INFO_PATH = "/v5/broker/account-info"
DEPOSITS_PATH = "/v5/broker/asset/query-sub-member-deposit-record"
QUERY_ALL_PATH = "/v5/broker/apilimit/query-all"
QUERY_CAP_PATH = "/v5/broker/apilimit/query-cap"
SET_LIMIT_PATH = "/v5/broker/apilimit/set"
EARNING_RECORD_PATH = "/v5/broker/earning-record"  # deprecated, still served
AWARD_INFO_PATH = "/v5/broker/award/info"
AWARD_DISTRIBUTE_PATH = "/v5/broker/award/distribute-award"
AWARD_RECORD_PATH = "/v5/broker/award/distribution-record"
