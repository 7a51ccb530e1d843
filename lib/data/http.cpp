// libcurl GET with limits (see http.h).
#include "data/http.h"

#include <mutex>

#include <curl/curl.h>
#include <fmt/format.h>

#include "core/error.h"

namespace mnistctl {
namespace {

struct Transfer {
  const HttpSink* sink;
  const HttpProgress* progress;
  int64_t bytes = 0;
  bool aborted = false;
};

size_t on_data(char* ptr, size_t size, size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * nmemb;
  if (!(*t->sink)(reinterpret_cast<const uint8_t*>(ptr), n)) {
    t->aborted = true;
    return 0;  // makes curl stop with CURLE_WRITE_ERROR
  }
  t->bytes += static_cast<int64_t>(n);
  return n;
}

int on_progress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (*t->progress) (*t->progress)(static_cast<int64_t>(now), static_cast<int64_t>(total));
  return 0;
}

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      throw RuntimeError("libcurl could not be initialised");
  });
}

}  // namespace

HttpResult http_get(const std::string& url, const HttpOptions& opt, const HttpSink& sink,
                    const HttpProgress& progress) {
  global_init();
  HttpResult r;
  CURL* c = curl_easy_init();
  if (!c) {
    r.error = "libcurl could not start a transfer";
    return r;
  }
  Transfer t{&sink, &progress};
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);  // HTTP >= 400 is an error, body not kept
  curl_easy_setopt(c, CURLOPT_USERAGENT, "mnistctl/0.1 (libcurl)");
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, opt.connect_timeout_s);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, opt.stall_timeout_s);
  if (opt.max_bytes > 0)
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(opt.max_bytes));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);

  CURLcode rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  curl_easy_cleanup(c);
  r.bytes = t.bytes;
  std::string detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);

  switch (rc) {
    case CURLE_OK:
      r.ok = true;
      break;
    case CURLE_HTTP_RETURNED_ERROR:
      r.error = fmt::format("HTTP {}", r.status);
      r.transient = r.status >= 500 || r.status == 429 || r.status == 408;
      break;
    case CURLE_OPERATION_TIMEDOUT:
      r.error = fmt::format("timeout ({})", detail);
      r.transient = true;
      break;
    case CURLE_PARTIAL_FILE:
      r.error = fmt::format("truncated after {} bytes ({})", t.bytes, detail);
      r.transient = true;
      break;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
      r.error = fmt::format("connection failed after {} bytes ({})", t.bytes, detail);
      r.transient = true;
      break;
    case CURLE_FILESIZE_EXCEEDED:
      r.error = fmt::format("larger than the {} bytes accepted", opt.max_bytes);
      break;
    case CURLE_WRITE_ERROR:
      r.error = t.aborted ? "aborted by the receiver" : detail;
      break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      r.error = fmt::format("cannot resolve host ({})", detail);
      break;
    case CURLE_COULDNT_CONNECT:
      r.error = fmt::format("cannot connect ({})", detail);
      break;
    default:
      r.error = detail;
      break;
  }
  return r;
}

}  // namespace mnistctl
