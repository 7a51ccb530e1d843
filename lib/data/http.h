// One HTTP(S) GET through libcurl, streamed to a callback, with the limits a downloader needs:
// a connect timeout, a stall timeout (less than 1 byte/s for N seconds: CURLOPT_LOW_SPEED_*),
// a cap on the bytes accepted (refused up front from Content-Length, and enforced as data
// arrives), redirects limited to http/https. One attempt only: the caller decides on retries
// from `transient`. Nothing here throws through libcurl: callbacks report by return value.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace mnistctl {

struct HttpOptions {
  long connect_timeout_s = 20;
  long stall_timeout_s = 30;
  int64_t max_bytes = 0;  // 0: no cap
};

struct HttpResult {
  bool ok = false;
  bool transient = false;  // worth retrying (timeout, cut connection, HTTP 5xx/429/408)
  long status = 0;         // HTTP status, 0 when none was received
  int64_t bytes = 0;       // body bytes received
  std::string error;       // short reason: "HTTP 404", "timeout (...)", "truncated (...)", ...
};

// Returns false to abort the transfer (the result's error is then "aborted by the receiver";
// the caller knows its own reason).
using HttpSink = std::function<bool(const uint8_t* data, size_t size)>;
using HttpProgress = std::function<void(int64_t received, int64_t total)>;

HttpResult http_get(const std::string& url, const HttpOptions& opt, const HttpSink& sink,
                    const HttpProgress& progress = nullptr);

}  // namespace mnistctl
